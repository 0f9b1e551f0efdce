using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Text;
using System.Text.Json;
using Scalpel.CodeGen;
using Scalpel.Onnx;
using Scalpel.Onnx.Layers;
using Scalpel.Pruning.Targets;

namespace Scalpel.Pruning.Profiling;

/// <summary>
/// One weight matrix to time: [N outputs x K inputs], run on <see cref="Batch"/> input rows per call. An FC layer
/// is a mat-vec (batch 1); a convolution is timed as its im2col GEMM: N = output channels M, K = C*kh*kw,
/// Batch = output pixels P.
/// </summary>
public sealed record ProfileShape(LayerKind Kind, int K, int N, int Batch)
{
    public string Label => Kind == LayerKind.Fc
        ? string.Create(CultureInfo.InvariantCulture, $"fc {K}x{N}")
        : string.Create(CultureInfo.InvariantCulture, $"conv M={N} K={K} P={Batch}");
}

public sealed record ProfileOptions
{
    /// <summary>The profile to copy: vector width, group width, caches, description; only crossover and measured change.</summary>
    public required TargetProfile Base { get; init; }
    public string Name { get; init; } = "host-profiled";
    /// <summary>Fewer, shorter timing rounds (for tests): quicker, noisier. Compiling the kernels takes the same time.</summary>
    public bool Quick { get; init; }
    public IReadOnlyList<ProfileShape> Shapes { get; init; } = KernelProfiler.DefaultShapes;
    /// <summary>Ascending, in [0, 1).</summary>
    public IReadOnlyList<double> Sparsities { get; init; } = KernelProfiler.DefaultSparsities;
    public IProgress<string>? Progress { get; init; }
    public CancellationToken Cancellation { get; init; }
}

/// <summary>One kernel's median time per call, and its ratio to the dense kernel of the same shape (below 1: faster).</summary>
public sealed record KernelTiming(ProfileShape Shape, WeightFormat Format, double Sparsity, double Microseconds, double Ratio);

/// <summary>Sparse/dense time ratios per sparsity, and the crossover read from them, for one layer kind and format.</summary>
public sealed record CrossoverCurve(LayerKind Kind, WeightFormat Format, IReadOnlyList<double> Sparsities, IReadOnlyList<double> Ratios, double Crossover);

public sealed record ProfileResult(TargetProfile Profile, IReadOnlyList<KernelTiming> Timings, IReadOnlyList<CrossoverCurve> Curves, TimeSpan Elapsed);

/// <summary>
/// `dotnet scalpel profile`: emits the code generator's own Dense, CSR, grouped-CSR and output-grouped kernels for a
/// set of layer shapes and sparsities, compiles them in process, times them on this machine and records, per layer kind and
/// sparse format, the sparsity above which the sparse kernel beats the dense one (docs/pruning.md).
/// </summary>
public static class KernelProfiler
{
    public static readonly IReadOnlyList<ProfileShape> DefaultShapes =
    [
        new(LayerKind.Fc, 784, 300, 1), new(LayerKind.Fc, 300, 100, 1), new(LayerKind.Fc, 400, 120, 1),
        new(LayerKind.Conv, 144, 16, 196), new(LayerKind.Conv, 288, 32, 196),
    ];

    public static readonly IReadOnlyList<double> DefaultSparsities = [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99];

    private sealed record Timing(int Rounds, double RoundMilliseconds, double MaxWarmupSeconds, int WarmupPauseMs);

    private static readonly Timing Full = new(Rounds: 31, RoundMilliseconds: 4, MaxWarmupSeconds: 30, WarmupPauseMs: 200);
    private static readonly Timing QuickTiming = new(Rounds: 7, RoundMilliseconds: 0.4, MaxWarmupSeconds: 10, WarmupPauseMs: 150);

    /// <summary>Calls per warm-up pass: above the runtime's tier-up call count (30).</summary>
    private const int WarmupCalls = 40;

    private static readonly WeightFormat[] SparseFormats = [WeightFormat.Csr, WeightFormat.GroupedCsr, WeightFormat.OutputGrouped];

    private static readonly IFormatProvider Inv = CultureInfo.InvariantCulture;

    public static ProfileResult Run(ProfileOptions o)
    {
        var clock = Stopwatch.StartNew();
        var say = o.Progress ?? new Progress<string>(_ => { });
        var target = o.Base;
        Check(o);
        var timing = o.Quick ? QuickTiming : Full;
        var code = target.CodeTarget;
        say.Report(string.Create(Inv, $"profiling the generated kernels for {target.Name} (Vector{code.SimdBits}{(code.Fma ? ", FMA" : "")}, group width {target.GroupWidth}) on {Machine()}"));
        say.Report(string.Create(Inv, $"{o.Shapes.Count} shapes x {o.Sparsities.Count} sparsities, median of {timing.Rounds} rounds of ~{timing.RoundMilliseconds} ms per kernel{(o.Quick ? " (quick)" : "")}"));

        // Emit every kernel first and compile them as one assembly: Roslyn runs (and its own JIT storm settles) once.
        var compileClock = Stopwatch.StartNew();
        var benches = o.Shapes.Select((shape, i) => Prepare(i, shape, o)).ToList();
        var compiled = RoslynCompiler.Compile("ScalpelProfile", benches.SelectMany(b => b.Generated.Select(g => g.Source)));
        var timings = new List<KernelTiming>();
        try
        {
            string warm;
            using (var watcher = new JitTierWatcher(Bench.Namespace)) // from the first call of a generated method on
            {
                foreach (var b in benches) b.Load(compiled);
                say.Report(string.Create(Inv, $"{benches.Sum(b => b.Runs.Length)} kernels emitted, compiled and checked against a reference in {compileClock.Elapsed.TotalSeconds:0.0} s"));
                warm = WarmUp(benches, watcher, timing, o.Cancellation);
            }
            say.Report(warm);
            GC.Collect(); // Roslyn's garbage: no collection should land inside a timed round
            GC.WaitForPendingFinalizers();
            foreach (var b in benches)
            {
                var medians = Measure(b.Runs, b.Shape, b.X, b.Y, timing, o.Cancellation);
                var result = b.Variants.Select((v, i) => new KernelTiming(b.Shape, v.Format, v.Sparsity, medians[i], medians[i] / medians[0])).ToList();
                ReportShape(b.Shape, result, o.Sparsities, say);
                timings.AddRange(result);
            }
        }
        finally
        {
            foreach (var b in benches) b.Runs = [];
            compiled.Unload();
        }

        var curves = new List<CrossoverCurve>();
        foreach (var kind in new[] { LayerKind.Fc, LayerKind.Conv })
        {
            var shapes = o.Shapes.Where(s => s.Kind == kind).ToList();
            if (shapes.Count == 0) continue;
            foreach (var format in SparseFormats)
            {
                // Geometric mean over the kind's shapes: every shape counts the same, whatever its size.
                var ratios = o.Sparsities.Select(s => Math.Exp(shapes.Average(shape =>
                    Math.Log(timings.Single(t => t.Shape == shape && t.Format == format && t.Sparsity == s).Ratio)))).ToList();
                curves.Add(new CrossoverCurve(kind, format, o.Sparsities, ratios, Crossover(o.Sparsities, ratios)));
            }
        }
        ReportCurves(curves, say);

        Targets.Crossover Measured(LayerKind kind, Targets.Crossover old) =>
            curves.Any(c => c.Kind == kind)
                ? new Targets.Crossover
                {
                    Csr = curves.Single(c => c.Kind == kind && c.Format == WeightFormat.Csr).Crossover,
                    GroupedCsr = curves.Single(c => c.Kind == kind && c.Format == WeightFormat.GroupedCsr).Crossover,
                    OutputGrouped = curves.Single(c => c.Kind == kind && c.Format == WeightFormat.OutputGrouped).Crossover,
                }
                : old;
        var profile = target with
        {
            Name = o.Name,
            Crossover = new CrossoverTable { Fc = Measured(LayerKind.Fc, target.Crossover.Fc), Conv = Measured(LayerKind.Conv, target.Crossover.Conv) },
            Measured = Describe(o, timing),
        };
        return new ProfileResult(profile, timings, curves, clock.Elapsed);
    }

    /// <summary>Writes the profile atomically (temporary file, then rename) after checking that it loads back.</summary>
    public static void Write(TargetProfile profile, string path)
    {
        var json = profile.ToJson();
        TargetProfile.Parse(json, path);
        var full = Path.GetFullPath(path);
        ModelCompiler.WriteAll(Path.GetDirectoryName(full)!, [(full, Encoding.UTF8.GetBytes(json))]);
    }

    /// <summary>
    /// The lowest sparsity at which the sparse kernel is faster (ratio below 1) there and at every measured sparsity
    /// above; linearly interpolated between the last losing and the first winning point, rounded up to a hundredth.
    /// 1 if it does not win at the highest sparsity measured.
    /// </summary>
    public static double Crossover(IReadOnlyList<double> sparsities, IReadOnlyList<double> ratios)
    {
        if (sparsities.Count != ratios.Count || sparsities.Count == 0) throw new ArgumentException("one ratio per sparsity expected");
        int first = sparsities.Count;
        while (first > 0 && ratios[first - 1] < 1) first--;
        if (first == sparsities.Count) return 1;
        if (first == 0) return sparsities[0];
        double s0 = sparsities[first - 1], s1 = sparsities[first], r0 = ratios[first - 1], r1 = ratios[first];
        double s = s0 + (s1 - s0) * (r0 - 1) / (r0 - r1);
        return Math.Clamp(Math.Ceiling(s * 100 - 1e-6) / 100, s0, s1);
    }

    // ---- validation ------------------------------------------------------------------------------------

    private static void Check(ProfileOptions o)
    {
        var t = o.Base;
        if (string.IsNullOrWhiteSpace(o.Name)) throw new ScalpelException(ErrorCode.Option, "the profile needs a name.");
        if (t.Parallelism == Parallelism.High)
            throw new ScalpelException(ErrorCode.Target, $"target {t.Name} is a high-parallelism device: `profile` times the generated C# kernels on this CPU, which says nothing about it.");
        bool accelerated = CodeTarget.RunsInHardware(t.SimdBits);
        if (!accelerated)
            throw new ScalpelException(ErrorCode.Target, $"target {t.Name} uses Vector{t.SimdBits}, which this machine does not run in hardware: its timings would measure a software fallback. Profile it on such a machine, or use --target host.");
        if (t.Fma && !(System.Runtime.Intrinsics.X86.Fma.IsSupported || System.Runtime.Intrinsics.Arm.AdvSimd.IsSupported))
            throw new ScalpelException(ErrorCode.Target, $"target {t.Name} uses FMA, which this machine lacks: its timings would measure a software fallback. Use --target host.");
        if (t.GroupWidth % t.CodeTarget.Lanes != 0)
            throw new ScalpelException(ErrorCode.Target, $"target {t.Name}: group width {t.GroupWidth} is not a multiple of its {t.CodeTarget.Lanes} vector lanes.");
        if (o.Shapes.Count == 0 || o.Shapes.Any(s => s.K < 1 || s.N < 1 || s.Batch < 1) || o.Shapes.Distinct().Count() != o.Shapes.Count)
            throw new ScalpelException(ErrorCode.Option, "profile: the shapes must be distinct, each with positive K, N and batch.");
        if (o.Sparsities.Count == 0 || o.Sparsities.Any(s => s is < 0 or >= 1) || o.Sparsities.Zip(o.Sparsities.Skip(1)).Any(p => p.First >= p.Second))
            throw new ScalpelException(ErrorCode.Option, "profile: sparsities must be ascending values in [0, 1).");
    }

    // ---- one shape -------------------------------------------------------------------------------------

    private sealed record Variant(string ClassName, WeightFormat Format, double Sparsity, float[] Weight);

    /// <summary>One shape's kernels: the dense one first, then CSR, grouped CSR and output-grouped at each sparsity.</summary>
    private sealed class Bench
    {
        public const string Namespace = "ScalpelProfile";
        public required ProfileShape Shape { get; init; }
        public required string ClassPrefix { get; init; }
        public required List<Variant> Variants { get; init; }
        public required List<GeneratedModel> Generated { get; init; }
        public required float[] Bias { get; init; }
        public required float[] X { get; init; }
        public required float[] Y { get; init; }
        public RunBatch[] Runs { get; set; } = [];

        /// <summary>Instantiates the compiled classes; timing a wrong kernel would be pointless, so each is checked once.</summary>
        public void Load(RoslynCompiler compiled)
        {
            Runs = Variants.Select((v, i) => compiled.Instantiate($"{Namespace}.{ClassPrefix}.{v.ClassName}", Generated[i])).ToArray();
            for (int i = 0; i < Runs.Length; i++) Verify(Runs[i], Variants[i], Shape, Bias, X, Y);
        }
    }

    private static Bench Prepare(int index, ProfileShape shape, ProfileOptions o)
    {
        o.Cancellation.ThrowIfCancellationRequested();
        var target = o.Base;
        int groupWidth = target.GroupWidth;
        var rng = new Random(unchecked(17 + shape.K * 31 + shape.N * 1009 + shape.Batch * 7919));
        var weight = RandomArray(rng, shape.N * shape.K, 0.5f);
        var bias = RandomArray(rng, shape.N, 0.5f);
        var x = RandomArray(rng, shape.Batch * shape.K, 1f);

        // Nested masks: each format removes the first round(s * total) units of one fixed random order, so a
        // higher sparsity keeps a subset of a lower one's weights.
        var variants = new List<Variant> { new("Dense", WeightFormat.Dense, 0, weight) };
        foreach (var format in SparseFormats)
        {
            int g = format == WeightFormat.Csr ? 1 : groupWidth;
            bool alongOutputs = format == WeightFormat.OutputGrouped;
            var order = Shuffled(alongOutputs ? (shape.N + g - 1) / g * shape.K : shape.N * (shape.K / g), rng);
            for (int i = 0; i < o.Sparsities.Count; i++)
                variants.Add(new($"{format}{i:00}", format, o.Sparsities[i], Prune(weight, shape, g, alongOutputs, order, o.Sparsities[i])));
        }

        // The code generator's own kernels: a one-Gemm model, its layer switched to each format and weight set.
        var prefix = $"S{index}";
        var model = GraphAnalyzer.Analyze(SyntheticModels.SingleGemm(shape.K, shape.N, weight, bias, shape.Label));
        var dense = (DenseLayer)model.Layers.Single();
        var generated = new List<GeneratedModel>();
        foreach (var v in variants)
        {
            var weights = new LayerWeights(v.Weight, dense.Bias, v.Format, v.Format is WeightFormat.GroupedCsr or WeightFormat.OutputGrouped ? groupWidth : 1);
            var variant = model.WithWeights(new Dictionary<string, LayerWeights> { [dense.Name] = weights });
            generated.Add(CSharpEmitter.Emit(variant, new EmitOptions($"{Bench.Namespace}.{prefix}", v.ClassName, target.CodeTarget,
                string.Create(Inv, $"profile {shape.Label} {v.Format} {v.Sparsity:0.00}"))));
        }
        return new Bench
        {
            Shape = shape, ClassPrefix = prefix, Variants = variants, Generated = generated, Bias = bias, X = x, Y = new float[shape.Batch * shape.N],
        };
    }

    private static float[] RandomArray(Random rng, int length, float scale)
    {
        var a = new float[length];
        for (int i = 0; i < a.Length; i++) a[i] = (float)(rng.NextDouble() * 2 - 1) * scale;
        return a;
    }

    private static int[] Shuffled(int count, Random rng)
    {
        var order = Enumerable.Range(0, count).ToArray();
        rng.Shuffle(order);
        return order;
    }

    /// <summary>
    /// Zeroes round(sparsity * units) units of width g (single weights for g = 1, aligned groups otherwise; a row's
    /// last K % g columns stay dense, as in SIMD-aware pruning; along outputs, one column of g rows), taken in the
    /// given random order.
    /// </summary>
    private static float[] Prune(float[] weight, ProfileShape shape, int g, bool alongOutputs, int[] order, double sparsity)
    {
        var w = (float[])weight.Clone();
        int perRow = shape.K / g;
        int remove = (int)Math.Round(sparsity * order.Length);
        for (int i = 0; i < remove; i++)
        {
            if (alongOutputs)
                for (int r = order[i] / shape.K * g; r < Math.Min(shape.N, (order[i] / shape.K + 1) * g); r++) w[r * shape.K + order[i] % shape.K] = 0f;
            else Array.Clear(w, order[i] / perRow * shape.K + order[i] % perRow * g, g);
        }
        return w;
    }

    /// <summary>Timing a wrong kernel would be pointless: check its output against a plain reference once.</summary>
    private static void Verify(RunBatch run, Variant v, ProfileShape shape, float[] bias, float[] x, float[] y)
    {
        run(x, y, shape.Batch);
        for (int s = 0; s < shape.Batch; s++)
            for (int r = 0; r < shape.N; r++)
            {
                double expected = bias[r];
                for (int c = 0; c < shape.K; c++) expected += (double)v.Weight[r * shape.K + c] * x[s * shape.K + c];
                double got = y[s * shape.N + r];
                if (!(Math.Abs(got - expected) <= 1e-3 * (1 + Math.Abs(expected))))
                    throw new InvalidOperationException(string.Create(Inv,
                        $"profile: the generated {v.Format} kernel for {shape.Label} at sparsity {v.Sparsity} computes {got} where {expected} is expected (sample {s}, output {r})."));
            }
    }

    // ---- timing ----------------------------------------------------------------------------------------

    /// <summary>
    /// Calls every kernel, then waits until the runtime reports their hot methods fully optimised and the JIT has gone
    /// quiet: no background tier-up (Roslyn's, after the compile, runs for seconds) left to compete with the timing.
    /// The layer kernels are AggressiveOptimization, jitted optimised on their first call; in a collectible load
    /// context the runtime does not tier and jits Run optimised at once too, but the check does not rely on that.
    /// </summary>
    private static string WarmUp(List<Bench> benches, JitTierWatcher watcher, Timing timing, CancellationToken cancel)
    {
        var clock = Stopwatch.StartNew();
        int expected = benches.Sum(b => b.Runs.Length) * 2; // Run and the layer kernel of each class; RunChunk may be inlined
        int passes = 0;
        while (true)
        {
            cancel.ThrowIfCancellationRequested();
            bool optimised = watcher.Observed ? watcher.HotMethods >= expected && watcher.Pending().Count == 0 : passes >= 3;
            if (passes == 0 || !optimised)
            {
                foreach (var b in benches)
                    foreach (var run in b.Runs)
                        for (int i = 0; i < WarmupCalls; i++) run(b.X, b.Y, b.Shape.Batch);
                passes++;
            }
            long compiled = System.Runtime.JitInfo.GetCompiledMethodCount();
            Thread.Sleep(timing.WarmupPauseMs); // tier-up compiles in the background; JIT events arrive with a lag
            bool quiet = System.Runtime.JitInfo.GetCompiledMethodCount() == compiled;
            optimised = watcher.Observed ? watcher.HotMethods >= expected && watcher.Pending().Count == 0 : passes >= 3;
            string took = string.Create(Inv, $"{clock.Elapsed.TotalSeconds:0.0} s, {passes} pass{(passes > 1 ? "es" : "")} of {WarmupCalls} calls per kernel");
            if (quiet && optimised)
                return watcher.Observed
                    ? string.Create(Inv, $"warm-up: {watcher.HotMethods} hot methods fully optimised, JIT quiet after {took}")
                    : $"warm-up: JIT quiet after {took} (no JIT events observed to confirm the tiers)";
            if (clock.Elapsed.TotalSeconds > timing.MaxWarmupSeconds)
            {
                var pending = watcher.Pending();
                return string.Create(Inv,
                    $"warning: warm-up stopped after {took}: {watcher.HotMethods} of {expected} hot methods seen, {pending.Count} not fully optimised{(pending.Count > 0 ? $" ({string.Join(", ", pending.Take(3))})" : "")}{(quiet ? "" : ", JIT still busy")}");
            }
        }
    }

    /// <summary>Median microseconds per call of each kernel, rounds interleaved across kernels so drift hits all alike.</summary>
    private static double[] Measure(RunBatch[] runs, ProfileShape shape, float[] x, float[] y, Timing timing, CancellationToken cancel)
    {
        double tick = 1e6 / Stopwatch.Frequency;
        // Calls per round: enough for the round to last about RoundMilliseconds.
        var reps = new int[runs.Length];
        for (int k = 0; k < runs.Length; k++)
        {
            double best = double.MaxValue;
            for (int i = 0; i < 5; i++) best = Math.Min(best, TimeCalls(runs[k], x, y, shape.Batch, 1) * tick);
            reps[k] = (int)Math.Clamp(Math.Ceiling(timing.RoundMilliseconds * 1000 / Math.Max(best, 0.01)), 1, 10_000_000);
        }
        var samples = new double[runs.Length][];
        for (int k = 0; k < runs.Length; k++) samples[k] = new double[timing.Rounds];
        for (int round = 0; round < timing.Rounds; round++)
        {
            cancel.ThrowIfCancellationRequested();
            for (int j = 0; j < runs.Length; j++)
            {
                int k = (j + round) % runs.Length; // rotate the order so no kernel always follows the same one
                samples[k][round] = TimeCalls(runs[k], x, y, shape.Batch, reps[k]) * tick / reps[k];
            }
        }
        return samples.Select(Samples.Median).ToArray();
    }

    /// <summary>Ticks for <paramref name="reps"/> calls, after one untimed call that brings the kernel's weights into cache.</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static long TimeCalls(RunBatch run, float[] x, float[] y, int batch, int reps)
    {
        run(x, y, batch);
        long start = Stopwatch.GetTimestamp();
        for (int i = 0; i < reps; i++) run(x, y, batch);
        return Stopwatch.GetTimestamp() - start;
    }

    // ---- reporting -------------------------------------------------------------------------------------

    private static void ReportShape(ProfileShape shape, List<KernelTiming> timings, IReadOnlyList<double> sparsities, IProgress<string> say)
    {
        var dense = timings[0];
        say.Report(string.Create(Inv, $"  {shape.Label}{(shape.Kind == LayerKind.Fc ? $", batch {shape.Batch}" : "")}: dense {dense.Microseconds:0.00} µs"));
        say.Report(string.Create(Inv, $"  {"sparsity",8}  {"csr µs",10} {"ratio",6}  {"grouped µs",10} {"ratio",6}  {"output µs",10} {"ratio",6}"));
        foreach (var s in sparsities)
        {
            var csr = timings.Single(t => t.Format == WeightFormat.Csr && t.Sparsity == s);
            var grouped = timings.Single(t => t.Format == WeightFormat.GroupedCsr && t.Sparsity == s);
            var output = timings.Single(t => t.Format == WeightFormat.OutputGrouped && t.Sparsity == s);
            say.Report(string.Create(Inv, $"  {s,8:0.00}  {csr.Microseconds,10:0.00} {csr.Ratio,6:0.00}  {grouped.Microseconds,10:0.00} {grouped.Ratio,6:0.00}  {output.Microseconds,10:0.00} {output.Ratio,6:0.00}"));
        }
        double Cross(WeightFormat f) => Crossover(sparsities, sparsities.Select(s => timings.Single(t => t.Format == f && t.Sparsity == s).Ratio).ToList());
        say.Report(string.Create(Inv, $"  {shape.Label} crossover: csr {Cross(WeightFormat.Csr):0.00}, groupedCsr {Cross(WeightFormat.GroupedCsr):0.00}, outputGrouped {Cross(WeightFormat.OutputGrouped):0.00}"));
    }

    private static void ReportCurves(List<CrossoverCurve> curves, IProgress<string> say)
    {
        if (curves.Count == 0) return;
        say.Report("sparse/dense time, geometric mean over the shapes of each kind:");
        string Head(CrossoverCurve c) => $"{c.Kind.ToString().ToLowerInvariant()} {c.Format switch { WeightFormat.Csr => "csr", WeightFormat.GroupedCsr => "grouped", _ => "output" }}";
        say.Report($"  {"sparsity",8}" + string.Concat(curves.Select(c => $"  {Head(c),12}")));
        var sparsities = curves[0].Sparsities;
        for (int i = 0; i < sparsities.Count; i++)
            say.Report(string.Create(Inv, $"  {sparsities[i],8:0.00}") + string.Concat(curves.Select(c => string.Create(Inv, $"  {c.Ratios[i],12:0.00}"))));
        foreach (var kind in curves.Select(c => c.Kind).Distinct())
            say.Report(string.Create(Inv,
                $"crossover {kind.ToString().ToLowerInvariant()}: csr {curves.Single(c => c.Kind == kind && c.Format == WeightFormat.Csr).Crossover:0.00}, groupedCsr {curves.Single(c => c.Kind == kind && c.Format == WeightFormat.GroupedCsr).Crossover:0.00}, outputGrouped {curves.Single(c => c.Kind == kind && c.Format == WeightFormat.OutputGrouped).Crossover:0.00}"));
    }

    /// <summary>What was measured, where and when (the date only: nothing else in the file depends on the time).</summary>
    private static string Describe(ProfileOptions o, Timing timing)
    {
        var t = o.Base;
        string Shapes(LayerKind kind) => string.Join(", ", o.Shapes.Where(s => s.Kind == kind).Select(s =>
            kind == LayerKind.Fc ? string.Create(Inv, $"{s.K}x{s.N}{(s.Batch != 1 ? $" batch {s.Batch}" : "")}") : string.Create(Inv, $"M={s.N} K={s.K} P={s.Batch}")));
        var fc = o.Shapes.Any(s => s.Kind == LayerKind.Fc) ? $"fc = mat-vec K x N {Shapes(LayerKind.Fc)}" : "fc not measured (kept from the base profile)";
        var conv = o.Shapes.Any(s => s.Kind == LayerKind.Conv) ? $"conv = im2col GEMM on the dense-layer kernels {Shapes(LayerKind.Conv)}" : "conv not measured (kept from the base profile)";
        return string.Create(Inv,
            $"dotnet scalpel profile{(o.Quick ? " --quick" : "")} from base {t.Name}: generated Dense, CSR, grouped-CSR and output-grouped (G={t.GroupWidth}) kernels, Vector{t.SimdBits}{(t.Fma ? " FMA" : "")}; " +
            $"{fc}; {conv}; sparsities {string.Join(" ", o.Sparsities.Select(s => s.ToString("0.##", Inv)))}; median of {timing.Rounds} rounds; " +
            $"crossover from the geometric mean of sparse/dense time over the shapes of each kind; " +
            $"machine: {Machine()}; {DateTime.UtcNow:yyyy-MM-dd} (UTC)");
    }

    private static string Machine()
    {
        string? model = null;
        try
        {
            if (File.Exists("/proc/cpuinfo"))
                model = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim();
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return string.Create(Inv,
            $"{(string.IsNullOrEmpty(model) ? "unknown CPU" : model)}, {Environment.ProcessorCount} cores, {RuntimeInformation.OSArchitecture}, {RuntimeInformation.FrameworkDescription}");
    }
}
