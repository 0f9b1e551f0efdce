using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Scalpel.CodeGen;
using Scalpel.Tests;

namespace Scalpel.Benchmarks;

/// <summary>
/// Where a generated model spends its time: the generated RunChunk with a timestamp around each layer's
/// statement, run repeatedly; prints each layer's median µs per call and share, largest first.
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
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{Path.GetFileName(path)}, target {target.Name}, batch {batch}: {total:0.0} µs in {labels.Count} layers"));
        foreach (var l in Enumerable.Range(0, labels.Count).OrderByDescending(l => medians[l]))
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{medians[l],10:0.0} µs {medians[l] / total,6:P1}  {labels[l]}"));
        return 0;
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
}
