using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.ML.OnnxRuntime;
using Scalpel.CodeGen;
using Scalpel.Onnx;
using Scalpel.Tests;

namespace Scalpel.Benchmarks;

/// <summary>
/// Where a generated model spends its time: the generated RunChunk with a timestamp around each layer's
/// statement, run repeatedly; prints each layer's median µs per call and share, largest first, beside ONNX
/// Runtime's own time (its profiler) for the nodes that layer computes.
/// </summary>
public static partial class LayerProfile
{
    public static int Run(string[] args)
    {
        string path = args[0];
        var target = CodeTarget.Resolve(args.Length > 1 ? args[1] : "host");
        int batch = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 1;
        var model = ModelCompiler.Generate(path, target, "Profile", "Model");
        var labels = new List<string>();
        var lines = model.Source.Split('\n').ToList();
        int start = lines.FindIndex(l => l.Contains("private void RunChunk(", StringComparison.Ordinal));
        for (int i = start; i < lines.Count && !lines[i].StartsWith("    }", StringComparison.Ordinal); i++)
        {
            var label = LayerComment().Match(lines[i]);
            if (!label.Success || lines[i + 1].TrimStart().StartsWith("//", StringComparison.Ordinal) || lines[i + 1].Trim() == "}") continue;
            lines[i + 1] = $"{{ long t0 = System.Diagnostics.Stopwatch.GetTimestamp(); {lines[i + 1].Trim()} Ticks[{labels.Count}] += System.Diagnostics.Stopwatch.GetTimestamp() - t0; }}";
            labels.Add(label.Groups[1].Value);
        }
        lines.Insert(start, $"    public static readonly long[] Ticks = new long[{labels.Count}];");
        var compiled = RoslynCompiler(string.Join('\n', lines), model);
        var run = compiled.Run;
        var ticks = compiled.Ticks;

        int inputSize = compiled.InputSize * batch, outputSize = compiled.OutputSize * batch;
        var input = new float[inputSize];
        var output = new float[outputSize];
        for (int i = 0; i < input.Length; i++) input[i] = (i % 17) / 17f;
        var watch = Stopwatch.StartNew();
        run(input, output, batch);
        int reps = Math.Max(3, (int)(2_000 / Math.Max(0.001, watch.Elapsed.TotalMilliseconds)));
        var perLayer = labels.Select(_ => new List<double>()).ToArray();
        for (int round = 0; round < 7; round++)
        {
            Array.Clear(ticks);
            for (int r = 0; r < reps; r++) run(input, output, batch);
            for (int l = 0; l < labels.Count; l++) perLayer[l].Add(ticks[l] * 1e6 / Stopwatch.Frequency / reps);
        }
        var medians = perLayer.Select(HeadToHead.Median).ToArray();
        double total = medians.Sum();
        var ort = OrtNodeTimes(path, batch);
        var names = labels.Select(l => NodeName().Match(l) is { Success: true } m ? m.Groups[1].Value : "").ToArray();
        // Each ONNX Runtime node's time goes to the generated layer that computes it: the layer of the same ONNX node,
        // else of the node that produced its first input, and so on (a SiLU or a BatchNormalization the generated
        // code fused into the conv before it); ONNX Runtime's own names add a suffix to a node's or tensor's.
        var graph = OnnxModel.Load(path).Proto.Graph;
        var byName = graph.Node.Where(n => n.Name.Length > 0).GroupBy(n => n.Name).ToDictionary(g => g.Key, g => g.First());
        var producer = graph.Node.SelectMany(n => n.Output.Select(o => (Tensor: o, Node: n))).GroupBy(x => x.Tensor).ToDictionary(g => g.Key, g => g.First().Node);
        var layerNames = names.ToHashSet();
        string? Owner(string ortName)
        {
            string trimmed = ortName.Replace("/QuickGeluFusion/", "", StringComparison.Ordinal);
            if (trimmed.EndsWith("_nchwc", StringComparison.Ordinal)) trimmed = trimmed[..^"_nchwc".Length];
            var node = byName.GetValueOrDefault(trimmed) ?? producer.GetValueOrDefault(trimmed);
            for (int hops = 0; node is not null && hops < 8; hops++)
            {
                if (layerNames.Contains(node.Name)) return node.Name;
                node = node.Input.Count > 0 ? producer.GetValueOrDefault(node.Input[0]) : null;
            }
            return null;
        }
        var owned = ort.Select(kv => (Owner: Owner(kv.Key), kv.Value.Micros, kv.Value.Op)).ToList();
        var theirs = owned.Where(x => x.Owner is not null).GroupBy(x => x.Owner!)
            .ToDictionary(g => g.Key, g => (Micros: g.Sum(x => x.Micros), Ops: string.Join(" + ", g.GroupBy(x => x.Op).Select(o => string.Create(CultureInfo.InvariantCulture, $"{o.Key} {o.Sum(x => x.Micros):0}")))));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{Path.GetFileName(path)}, target {target.Name}, batch {batch}: {total:0.0} µs in {labels.Count} layers; ONNX Runtime's profiler: {ort.Values.Sum(n => n.Micros):0.0} µs in {ort.Count} nodes (its profiler adds to each)"));
        Console.WriteLine("  generated    share   ONNX Runtime  its nodes (µs)             layer");
        foreach (var l in Enumerable.Range(0, labels.Count).OrderByDescending(l => medians[l]))
        {
            string them = theirs.TryGetValue(names[l], out var t) ? string.Create(CultureInfo.InvariantCulture, $"{t.Micros,10:0.0} µs  {t.Ops,-26}") : new string(' ', 41);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{medians[l],10:0.0} µs {medians[l] / total,6:P1}  {them} {labels[l]}"));
        }
        Console.WriteLine("ONNX Runtime nodes of no generated layer (layout reorders, ...), by operator:");
        foreach (var g in owned.Where(x => x.Owner is null).GroupBy(x => x.Op).OrderByDescending(g => g.Sum(x => x.Micros)))
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{g.Sum(x => x.Micros),10:0.0} µs  {g.Key} x{g.Count()}"));
        return 0;
    }

    /// <summary>
    /// ONNX Runtime's own time per node on one thread (its profiler's kernel times, median over 30 runs after 5 warm-up
    /// runs), by node name: where it spends the time the generated layers are compared with.
    /// </summary>
    private static Dictionary<string, (double Micros, string Op)> OrtNodeTimes(string path, int batch)
    {
        const int warmUp = 5, runs = 30;
        string prefix = Path.Combine(Path.GetTempPath(), $"scalpel-layer-profile-{Environment.ProcessId}");
        string file;
        using (var options = new SessionOptions { IntraOpNumThreads = 1, InterOpNumThreads = 1, EnableProfiling = true, ProfileOutputPathPrefix = prefix })
        using (var session = new InferenceSession(path, options))
        {
            string inName = session.InputNames[0];
            long[] shape = [batch, .. session.InputMetadata[inName].Dimensions.Skip(1).Select(d => (long)d)];
            var input = new float[shape.Aggregate(1L, (a, d) => a * d)];
            for (int i = 0; i < input.Length; i++) input[i] = (i % 17) / 17f;
            using var value = OrtValue.CreateTensorValueFromMemory(input, shape);
            for (int r = 0; r < warmUp + runs; r++)
            {
                using var outputs = session.Run(new RunOptions(), [inName], [value], session.OutputNames);
            }
            file = session.EndProfiling();
        }
        try
        {
            using var json = JsonDocument.Parse(File.ReadAllText(file));
            var times = new Dictionary<string, (List<double> Durations, string Op)>();
            foreach (var e in json.RootElement.EnumerateArray())
            {
                if (e.GetProperty("cat").GetString() != "Node" || e.GetProperty("name").GetString() is not { } name || !name.EndsWith("_kernel_time", StringComparison.Ordinal)) continue;
                string node = name[..^"_kernel_time".Length];
                string op = e.TryGetProperty("args", out var a) && a.TryGetProperty("op_name", out var o) ? o.GetString() ?? "" : "";
                if (!times.TryGetValue(node, out var t)) times[node] = t = ([], op);
                t.Durations.Add(e.GetProperty("dur").GetDouble());
            }
            return times.ToDictionary(kv => kv.Key, kv => (HeadToHead.Median(kv.Value.Durations.Skip(warmUp).ToList()), kv.Value.Op));
        }
        finally
        {
            File.Delete(file);
        }
    }

    private static (RunBatch Run, long[] Ticks, int InputSize, int OutputSize) RoslynCompiler(string source, GeneratedModel model)
    {
        var compiled = GeneratedAssembly.Compile("Profile.Model", [source]);
        var type = compiled.Assembly.GetType("Profile.Model")!;
        var ticks = (long[])type.GetField("Ticks")!.GetValue(null)!;
        int Const(string name) => (int)type.GetField(name)!.GetValue(null)!;
        return (compiled.Instantiate("Profile.Model", model.Weights), ticks, Const("InputSize"), Const("OutputSize"));
    }

    [GeneratedRegex(@"^\s*// (L\d+ .*)$")]
    private static partial Regex LayerComment();

    [GeneratedRegex(@"^L\d+ \w+ '([^']*)'")]
    private static partial Regex NodeName();
}
