using System.Runtime.InteropServices;
using Scalpel.Onnx;
using Scalpel.Pruning;
using Scalpel.Pruning.Data;
using Scalpel.Pruning.Targets;
using Xunit;

namespace Scalpel.Tests;

/// <summary>Bad data files and target profiles: clear errors naming the file and what was expected.</summary>
public sealed class BadInputTests
{
    private static string Data(string name) => Path.Combine(TestData.Fixtures, "data", name);

    private static string Npy(string descr, string shape, int bytes)
    {
        var header = $"{{'descr': '{descr}', 'fortran_order': False, 'shape': ({shape}), }}";
        header = header.PadRight((header.Length + 11) / 64 * 64 + 64 - 11) + "\n";
        var path = Path.Combine(TestData.TempDir(), "data.npy");
        using var file = File.Create(path);
        file.Write([0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0]);
        file.Write(BitConverter.GetBytes((ushort)header.Length));
        file.Write(System.Text.Encoding.ASCII.GetBytes(header));
        file.Write(new byte[bytes]);
        return path;
    }

    [Fact]
    public void WrongSampleShapeNamesTheFileAndTheExpectedShape()
    {
        var path = Npy("<f4", "5, 1, 27, 27", 5 * 27 * 27 * 4);
        var e = Assert.Throws<ScalpelException>(() => Dataset.Load(path, null, [1, 28, 28]));
        Assert.Contains(path, e.Message);
        Assert.Contains("[N, 1, 28, 28] float32", e.Message);
    }

    [Fact]
    public void WrongDtypeIsRefused()
    {
        var path = Npy("<i8", "5, 784", 5 * 784 * 8);
        var e = Assert.Throws<ScalpelException>(() => Dataset.Load(path, null, [1, 28, 28]));
        Assert.Contains("64-bit integers (int64)", e.Message);
        Assert.DoesNotContain("<i8", e.Message);
    }

    [Fact]
    public void LabelCountMustMatchTheInputs()
    {
        var labels = Npy("<i8", "7,", 7 * 8);
        var e = Assert.Throws<ScalpelException>(() => Dataset.Load(Data("fmnist-test-1000-x.npy"), labels, [1, 28, 28]));
        Assert.Contains("expected [1000]", e.Message);
    }

    [Fact]
    public void TruncatedDataIsRefused()
    {
        var path = Npy("<f4", "5, 784", 100);
        Assert.Contains("needs", Assert.Throws<ScalpelException>(() => Dataset.Load(path, null, [1, 28, 28])).Message);
    }

    [Theory]
    [InlineData(float.NaN, 0)]
    [InlineData(float.PositiveInfinity, 3 * 784 + 17)]
    [InlineData(float.NegativeInfinity, 5 * 784 - 1)]
    public void NonFiniteInputsNameTheFileSampleAndValue(float value, int index)
    {
        var values = new float[5 * 784];
        values[index] = value;
        var path = Path.Combine(TestData.TempDir(), "x.npy");
        NpyFile.Write(path, values, 5, 784);
        var e = Assert.Throws<ScalpelException>(() => Dataset.Load(path, null, [1, 28, 28]));
        Assert.Equal(ErrorCode.Data, e.Code);
        Assert.Contains(path, e.Message);
        Assert.Contains($"sample {index / 784}, value {index % 784}", e.Message);
    }

    [Fact]
    public void OptionsAreValidatedBeforeAnyWork()
    {
        PruneOptions Options(Func<PruneOptions, PruneOptions> edit) => edit(new PruneOptions
        {
            ModelPath = TestData.Fixture("mlp.onnx"), Target = TargetProfile.Resolve("x64-avx2"), Namespace = "N", ClassName = "C",
        });
        var bad = new (PruneOptions Options, string Expected)[]
        {
            (Options(o => o with { Overrides = new Dictionary<string, LayerOverride> { ["fc"] = new(Sparsity: double.NaN) } }), "--sparsity"),
            (Options(o => o with { Overrides = new Dictionary<string, LayerOverride> { ["/no/such/Gemm"] = new(KeepDense: true) } }), "/no/such/Gemm"),
            (Options(o => o with { MaxAccuracyDrop = double.NaN }), "--max-accuracy-drop"),
            (Options(o => o with { MinAgreement = 1.5 }), "--min-agreement"),
            (Options(o => o with { ValidationLabels = Data("fmnist-test-1000-y.npy") }), "without --validation"),
            (Options(o => o with { Retraining = new RetrainOptions { Distillation = float.NaN } }), "--distillation"),
        };
        foreach (var (options, expected) in bad)
        {
            var e = Assert.Throws<ScalpelException>(() => Pipeline.Run(options));
            Assert.Equal(ErrorCode.Option, e.Code);
            Assert.Contains(expected, e.Message);
        }
        // A real layer name and the kinds are accepted.
        Options(o => o with { Overrides = new Dictionary<string, LayerOverride> { ["/1/Gemm"] = new(KeepDense: true), ["fc"] = new(Sparsity: 0.5) } }).Validate();
    }

    /// <summary>A .npy file with a raw header (format <paramref name="major"/>) and <paramref name="bytes"/> of zero data.</summary>
    private static string RawNpy(string header, long bytes, int major = 1, uint? headerLength = null)
    {
        var path = Path.Combine(TestData.TempDir(), "raw.npy");
        using var file = File.Create(path);
        file.Write([0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', (byte)major, 0]);
        uint length = headerLength ?? (uint)header.Length;
        file.Write(major == 1 ? BitConverter.GetBytes((ushort)length) : BitConverter.GetBytes(length));
        file.Write(System.Text.Encoding.ASCII.GetBytes(header));
        file.SetLength(file.Length + bytes); // sparse: large declared data costs no disk
        return path;
    }

    [Theory]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776, 784), }", "1099511627776")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (-5, 784), }", "unreadable")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (abc, 784), }", "unreadable")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (5,, 784), }", "shape value")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, }", "lacks")]
    [InlineData("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (5, 784), }", "repeated")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, 'shape': (5, 784), 'extra': 1}", "unreadable")]
    [InlineData("{'descr': '<f4', 'fortran_order': True, 'shape': (5, 784), }", "Fortran")]
    [InlineData("{'descr': '>f4', 'fortran_order': False, 'shape': (5, 784), }", "not supported")]
    [InlineData("not a dict", "unreadable")]
    public void StrictNpyHeaders(string header, string expected)
    {
        var path = RawNpy(header, 5 * 784 * 4);
        var e = Assert.Throws<ScalpelException>(() => NpyFile.Read(path));
        Assert.Contains(path, e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void NpyHeaderLengthIsBounded()
    {
        var path = RawNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (5, 784), }", 5 * 784 * 4, major: 2, headerLength: 0x7FFFFFFF);
        Assert.Contains("header of 2147483647 bytes", Assert.Throws<ScalpelException>(() => NpyFile.Read(path)).Message);
        path = RawNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (5, 784), }", 0, major: 1, headerLength: 60000);
        Assert.Contains("truncated", Assert.Throws<ScalpelException>(() => NpyFile.Read(path)).Message);
    }

    [Fact]
    public void AdversarialNpyHeadersAreRefusedQuickly()
    {
        // Near the 64 KiB header limit, built to make a backtracking parser work hard.
        string[] headers =
        [
            "{" + new string(' ', 60_000) + "'",
            "{'descr': '<f4', 'shape': (" + string.Concat(Enumerable.Repeat("1, ", 20_000)) + "x",
            "{" + string.Concat(Enumerable.Repeat("'descr': '<f4', ", 3_500)) + "!",
            "{'descr': '" + new string('\'', 1) + string.Concat(Enumerable.Repeat(" ,", 30_000)),
        ];
        foreach (var header in headers)
        {
            var path = RawNpy(header, 16);
            var clock = System.Diagnostics.Stopwatch.StartNew();
            Assert.Throws<ScalpelException>(() => NpyFile.Read(path));
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(2), $"{clock.Elapsed.TotalSeconds:0.0} s for a {header.Length}-byte header");
        }
    }

    [Fact]
    public void Python2LongsInTheShapeAreRead()
    {
        var path = RawNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (5L, 784L), }", 5 * 784 * 4);
        Assert.Equal([5, 784], NpyFile.Read(path).Shape);
    }

    [Fact]
    public void OnlyTheSamplesUsedAreRead()
    {
        // 100,000 images declared (313 MB, a sparse file): asking for 16 reads 16.
        var path = RawNpy("{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 1, 28, 28), }", 100_000L * 784 * 4);
        var before = GC.GetAllocatedBytesForCurrentThread();
        var data = Dataset.Load(path, null, [1, 28, 28], maxSamples: 16);
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 10_000_000, "read more than the samples used");
        Assert.Equal(16, data.Count);
        Assert.Equal(16 * 784, data.Inputs.Length);
    }

    [Fact]
    public void AModelOnnxRuntimeRefusesIsAScalpelError()
    {
        // float64 weights: Scalpel.Build converts them, ONNX Runtime refuses Gemm(float, double).
        var proto = Scalpel.Onnx.Proto.ModelProto.Parser.ParseFrom(File.ReadAllBytes(TestData.Fixture("mlp.onnx")));
        var w = proto.Graph.Initializer.First(t => t.Dims.Count == 2);
        var values = MemoryMarshal.Cast<byte, float>(w.RawData.Span).ToArray();
        w.DataType = (int)Scalpel.Onnx.Proto.TensorProto.Types.DataType.Double;
        w.RawData = Google.Protobuf.ByteString.CopyFrom(MemoryMarshal.AsBytes(values.Select(v => (double)v).ToArray().AsSpan()));
        var path = Path.Combine(TestData.TempDir(), "double.onnx");
        File.WriteAllBytes(path, Google.Protobuf.MessageExtensions.ToByteArray(proto));
        var options = new PruneOptions
        {
            ModelPath = path, Target = TargetProfile.Resolve("x64-avx2"), Namespace = "N", ClassName = "C", ValidationData = Data("fmnist-test-1000-x.npy"),
        };
        var e = Assert.Throws<ScalpelException>(() => Pipeline.Run(options));
        Assert.Equal(ErrorCode.InvalidModel, e.Code);
        Assert.Contains(path, e.Message);
        Assert.Contains("ONNX Runtime", e.Message);
    }

    [Fact]
    public void MissingCalibrationFileStopsThePipeline()
    {
        var options = new PruneOptions
        {
            ModelPath = TestData.Fixture("mlp.onnx"), Target = TargetProfile.Resolve("x64-avx2"), Namespace = "N", ClassName = "C",
            CalibrationData = "/nonexistent/calib.npy",
        };
        Assert.Contains("/nonexistent/calib.npy", Assert.Throws<ScalpelException>(() => Pipeline.Run(options)).Message);
    }

    [Fact]
    public void BuiltInTargetsLoadAndHostMatchesThisMachine()
    {
        foreach (var name in TargetProfile.BuiltInNames)
        {
            var t = TargetProfile.Resolve(name);
            Assert.Equal(name, t.Name);
        }
        Assert.Equal(2, TargetProfile.Resolve("mcu-cortex-m4").GroupWidth);
        Assert.Equal(Parallelism.High, TargetProfile.Resolve("gpu").Parallelism);
        // AVX-512F counts even where .NET prefers 256-bit vectors (Vector512 code still runs as AVX-512 there).
        bool avx512 = System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated || System.Runtime.Intrinsics.X86.Avx512F.IsSupported;
        Assert.Equal(avx512 ? 16 : System.Runtime.Intrinsics.Vector256.IsHardwareAccelerated ? 8 : 4, TargetProfile.Resolve("host").GroupWidth);
    }

    [Theory]
    [InlineData("{ \"name\": \"x\" }", "invalid target profile")]
    [InlineData("{ \"name\": \"x\", \"parallelism\": \"extreme\", \"isa\": \"x64\", \"simdBits\": 256, \"groupWidth\": 8, \"elementType\": \"float32\", \"fma\": true }", "invalid target profile")]
    [InlineData("{ \"name\": \"x\", \"parallelism\": \"low\", \"isa\": \"x64\", \"simdBits\": 100, \"groupWidth\": 8, \"elementType\": \"float32\", \"fma\": true }", "simdBits is 100")]
    [InlineData("{ \"name\": \"x\", \"parallelism\": \"low\", \"isa\": \"x64\", \"simdBits\": 256, \"groupWidth\": 8, \"elementType\": \"float32\", \"fma\": true, \"speed\": 3 }", "invalid target profile")]
    [InlineData("not json", "invalid target profile")]
    [InlineData("{ \"name\": \"x\\u2028static int Evil;\", \"parallelism\": \"low\", \"isa\": \"x64\", \"simdBits\": 256, \"groupWidth\": 8, \"elementType\": \"float32\", \"fma\": true }", "one line")]
    [InlineData("{ \"name\": \"x\\n\", \"parallelism\": \"low\", \"isa\": \"x64\", \"simdBits\": 256, \"groupWidth\": 8, \"elementType\": \"float32\", \"fma\": true }", "one line")]
    public void BadTargetProfilesAreClearErrors(string json, string expected)
    {
        var path = Path.Combine(TestData.TempDir(), "mine.json");
        File.WriteAllText(path, json);
        var e = Assert.Throws<ScalpelException>(() => TargetProfile.Resolve(path));
        Assert.Contains(path, e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void UserProfileFileIsUsed()
    {
        var path = Path.Combine(TestData.TempDir(), "mine.json");
        File.WriteAllText(path, TargetProfile.Resolve("x64-sse").ToJson().Replace("\"x64-sse\"", "\"my-board\""));
        Assert.Equal("my-board", TargetProfile.Resolve(path).Name);
    }

    [Fact]
    public void WrittenNpyFilesReadBack()
    {
        var dir = TestData.TempDir();
        var x = Enumerable.Range(0, 2 * 3 * 5).Select(i => i * 0.25f - 1f).ToArray();
        NpyFile.Write(Path.Combine(dir, "x.npy"), x, 2, 3, 5);
        NpyFile.Write(Path.Combine(dir, "y.npy"), [7L, -1L, 3L], 3);
        var rx = NpyFile.Read(Path.Combine(dir, "x.npy"));
        Assert.Equal([2, 3, 5], rx.Shape);
        Assert.Equal(x, rx.Floats!);
        var ry = NpyFile.Read(Path.Combine(dir, "y.npy"));
        Assert.Equal([3], ry.Shape);
        Assert.Equal([7L, -1L, 3L], ry.Integers!);
        Assert.Equal(0, (new FileInfo(Path.Combine(dir, "x.npy")).Length - 2 * 3 * 5 * 4) % 64); // header padded to 64 bytes
    }
}
