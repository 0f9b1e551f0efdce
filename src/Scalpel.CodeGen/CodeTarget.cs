using System.Runtime.Intrinsics;
using Scalpel.Onnx;

namespace Scalpel.CodeGen;

/// <summary>What the emitter needs to know of a hardware target: its SIMD width and whether it has FMA.</summary>
public sealed record CodeTarget(string Name, int SimdBits, bool Fma)
{
    /// <summary>Which convolution kernel to emit; Auto chooses per layer. The others exist to measure and test each variant.</summary>
    public ConvKernel ConvKernel { get; init; } = ConvKernel.Auto;

    public static readonly IReadOnlyList<string> BuiltInNames = ["host", "x64-sse", "x64-avx2", "x64-avx512", "arm64-neon"];

    /// <summary>Floats per vector.</summary>
    public int Lanes => SimdBits / 32;

    public static CodeTarget Resolve(string name) => name switch
    {
        "host" => Host(),
        "x64-sse" => new("x64-sse", 128, false),
        "x64-avx2" => new("x64-avx2", 256, true),
        "x64-avx512" => new("x64-avx512", 512, true),
        "arm64-neon" => new("arm64-neon", 128, true),
        _ => throw new ScalpelException(ErrorCode.Target, $"unknown target '{name}'. Known targets: {string.Join(", ", BuiltInNames)}."),
    };

    /// <summary>
    /// The running machine's widest vector. On CPUs where .NET prefers 256-bit vectors (Vector512 not reported as
    /// accelerated although AVX-512F is there), Vector512 code still compiles to AVX-512 instructions, and the
    /// FMA-bound kernels gain from the doubled width as ONNX Runtime's do, so AVX-512F decides.
    /// </summary>
    public static CodeTarget Host()
    {
        int bits = RunsInHardware(512) ? 512 : RunsInHardware(256) ? 256 : 128;
        bool fma = System.Runtime.Intrinsics.X86.Fma.IsSupported || System.Runtime.Intrinsics.Arm.AdvSimd.IsSupported;
        return new CodeTarget("host", bits, fma);
    }

    /// <summary>Whether vectors of this width compile to instructions of this machine rather than a software fallback.</summary>
    public static bool RunsInHardware(int bits) => bits switch
    {
        512 => Vector512.IsHardwareAccelerated || System.Runtime.Intrinsics.X86.Avx512F.IsSupported,
        256 => Vector256.IsHardwareAccelerated,
        128 => Vector128.IsHardwareAccelerated,
        64 => Vector64.IsHardwareAccelerated,
        _ => false,
    };
}

/// <summary>
/// The dense convolution kernels: vectorised across output pixels (an implicit GEMM), across output channels, or
/// (3x3 and 5x5 stride 1 only) Winograd along the columns over the pixel GEMM, or Winograd on square tiles across
/// channels.
/// </summary>
public enum ConvKernel { Auto, Pixels, Channels, Winograd, WinogradTiles }
