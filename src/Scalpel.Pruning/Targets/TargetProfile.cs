using System.Reflection;
using System.Runtime.Intrinsics;
using System.Text.Json;
using System.Text.Json.Serialization;
using Scalpel.CodeGen;
using Scalpel.Onnx;
using Scalpel.Onnx.Layers;

namespace Scalpel.Pruning.Targets;

public enum Parallelism { Low, Moderate, High }

/// <summary>
/// Which way SIMD-aware pruning groups an FC layer's weights: a row's consecutive inputs (grouped CSR, one
/// horizontal sum per output) or consecutive outputs sharing one input (output-grouped, no horizontal sums).
/// </summary>
public enum GroupOrientation { Inputs, Outputs }

/// <summary>Sparsities above which a sparse format's kernel beats the dense kernel (1 = never).</summary>
public sealed record Crossover
{
    public double Csr { get; init; } = 1;
    public double GroupedCsr { get; init; } = 1;
    public double OutputGrouped { get; init; } = 1;
}

public sealed record CrossoverTable
{
    public Crossover Fc { get; init; } = new();
    public Crossover Conv { get; init; } = new();
    public Crossover For(LayerKind kind) => kind == LayerKind.Fc ? Fc : Conv;
}

public sealed record CacheSizes
{
    public long L1dBytes { get; init; }
    public long L2Bytes { get; init; }
    public long L3Bytes { get; init; }
}

/// <summary>A hardware target (targets/*.json): what the planner and the code generator need to know.</summary>
public sealed record TargetProfile
{
    [JsonPropertyName("$schema")] public string? Schema { get; init; }
    public required string Name { get; init; }
    public string? Description { get; init; }
    public required Parallelism Parallelism { get; init; }
    public required string Isa { get; init; }
    public required int SimdBits { get; init; }
    public required int GroupWidth { get; init; }
    public required string ElementType { get; init; }
    public required bool Fma { get; init; }
    public CacheSizes Cache { get; init; } = new();
    public CrossoverTable Crossover { get; init; } = new();
    /// <summary>The group orientations this target's kernels offer for FC layers; the planner takes the one with the lowest crossover.</summary>
    public IReadOnlyList<GroupOrientation> GroupOrientations { get; init; } = [GroupOrientation.Inputs];
    public string? Measured { get; init; }

    public static readonly IReadOnlyList<string> BuiltInNames = ["host", "mcu-cortex-m4", "x64-sse", "x64-avx2", "x64-avx512", "arm64-neon", "gpu"];

    [JsonIgnore] public CodeTarget CodeTarget => new(Name, SimdBits, Fma);

    public static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase, allowIntegerValues: false) },
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        // Profiles are files people read: keep quotes and backticks in descriptions as they are.
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    /// <summary>A built-in target by name, `host`, or a path to a profile file.</summary>
    public static TargetProfile Resolve(string nameOrPath)
    {
        if (nameOrPath == "host") return Host();
        if (BuiltInNames.Contains(nameOrPath)) return BuiltIn(nameOrPath);
        if (nameOrPath.EndsWith(".json", StringComparison.OrdinalIgnoreCase) || nameOrPath.Contains('/') || nameOrPath.Contains('\\'))
        {
            if (!File.Exists(nameOrPath)) throw new ScalpelException(ErrorCode.Target, $"{nameOrPath}: target profile not found.");
            SafeFile.RequireRegular(nameOrPath, ErrorCode.Target, nameOrPath);
            return Parse(File.ReadAllText(nameOrPath), nameOrPath);
        }
        throw new ScalpelException(ErrorCode.Target, $"unknown target '{nameOrPath}'. Known targets: {string.Join(", ", BuiltInNames)}, or a path to a profile .json file.");
    }

    public static TargetProfile BuiltIn(string name)
    {
        using var stream = typeof(TargetProfile).Assembly.GetManifestResourceStream($"targets/{name}.json")
            ?? throw new ScalpelException(ErrorCode.Target, $"unknown target '{name}'.");
        using var reader = new StreamReader(stream);
        return Parse(reader.ReadToEnd(), $"targets/{name}.json");
    }

    /// <summary>The running machine: its widest accelerated vector and the matching built-in crossover table.</summary>
    public static TargetProfile Host()
    {
        var code = CodeTarget.Host();
        var basis = code.SimdBits switch
        {
            512 => BuiltIn("x64-avx512"),
            256 => BuiltIn("x64-avx2"),
            _ => BuiltIn(System.Runtime.Intrinsics.Arm.AdvSimd.IsSupported ? "arm64-neon" : "x64-sse"),
        };
        return basis with
        {
            Name = "host",
            Description = $"this machine ({System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture}, Vector{code.SimdBits}{(code.Fma ? ", FMA" : "")})",
            SimdBits = code.SimdBits, GroupWidth = code.Lanes, Fma = code.Fma,
            Measured = $"crossover from the built-in {basis.Name} profile; run `dotnet scalpel profile` to measure this machine",
        };
    }

    public static TargetProfile Parse(string json, string source)
    {
        TargetProfile? profile;
        try
        {
            profile = JsonSerializer.Deserialize<TargetProfile>(json, Json);
        }
        catch (JsonException e)
        {
            throw new ScalpelException(ErrorCode.Target, $"{source}: invalid target profile: {e.Message}", e);
        }
        if (profile is null) throw new ScalpelException(ErrorCode.Target, $"{source}: empty target profile.");
        profile.Validate(source);
        return profile;
    }

    private void Validate(string source)
    {
        // The name is shown in reports and generated code comments: one short printable line.
        if (string.IsNullOrWhiteSpace(Name) || Name.Length > 100 || Name.Any(c => char.IsControl(c) || char.GetUnicodeCategory(c) is System.Globalization.UnicodeCategory.LineSeparator or System.Globalization.UnicodeCategory.ParagraphSeparator))
            throw new ScalpelException(ErrorCode.Target, $"{source}: name must be 1 to 100 printable characters on one line.");
        if (SimdBits is not (64 or 128 or 256 or 512))
            throw new ScalpelException(ErrorCode.Target, $"{source}: simdBits is {SimdBits}; expected 64, 128, 256 or 512.");
        if (GroupWidth is < 1 or > 64)
            throw new ScalpelException(ErrorCode.Target, $"{source}: groupWidth is {GroupWidth}; expected 1 to 64.");
        if (GroupOrientations.Count == 0 || GroupOrientations.Distinct().Count() != GroupOrientations.Count)
            throw new ScalpelException(ErrorCode.Target, $"{source}: groupOrientations must list \"inputs\", \"outputs\" or both, once each.");
        foreach (var (kind, c) in new[] { ("fc", Crossover.Fc), ("conv", Crossover.Conv) })
            if (c.Csr is < 0 or > 1 || c.GroupedCsr is < 0 or > 1 || c.OutputGrouped is < 0 or > 1)
                throw new ScalpelException(ErrorCode.Target, $"{source}: crossover.{kind} values must lie in [0, 1].");
    }

    public string ToJson() => JsonSerializer.Serialize(this, Json) + "\n";
}
