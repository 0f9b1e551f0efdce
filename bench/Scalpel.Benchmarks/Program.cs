using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Running;

// dotnet run -c Release --project bench/Scalpel.Benchmarks -- --filter '*'
// dotnet run -c Release --project bench/Scalpel.Benchmarks -- results   (regenerates docs/results.md)
// dotnet run -c Release --project bench/Scalpel.Benchmarks -- convsweep [TARGET [SHAPE]]   (conv shapes vs ONNX Runtime)
if (args.Length > 0 && args[0] == "results")
    return Scalpel.Benchmarks.ResultsReport.Run(args[1..]);
if (args.Length > 0 && args[0] == "convsweep")
    return Scalpel.Benchmarks.ConvSweep.Run(args[1..]);
// dotnet run -c Release --project bench/Scalpel.Benchmarks -- models [DIR [TARGET [MODEL]]]   (architectures vs ONNX Runtime)
if (args.Length > 0 && args[0] == "models")
    return Scalpel.Benchmarks.ModelSweep.Run(args[1..]);
// dotnet run -c Release --project bench/Scalpel.Benchmarks -- layers MODEL.onnx [TARGET [BATCH]]   (time per generated layer, beside ONNX Runtime's for the same nodes)
if (args.Length > 0 && args[0] == "layers")
    return Scalpel.Benchmarks.LayerProfile.Run(args[1..]);
// dotnet run -c Release --project bench/Scalpel.Benchmarks -- sparsefc   (the sparse FC sweep of docs/performance.md)
if (args.Length > 0 && args[0] == "sparsefc")
    return Scalpel.Benchmarks.SparseFcSweep.Run(args[1..]);

// dotnet run -c Release --project bench/Scalpel.Benchmarks -- train MODEL.onnx TRAIN-X.npy TRAIN-Y.npy [SAMPLES [REPEATS]]   (trainer images/s, 1 vs all cores)
if (args.Length > 0 && args[0] == "train")
    return Scalpel.Benchmarks.TrainSpeed.Run(args[1..]);
// dotnet run -c Release --project bench/Scalpel.Benchmarks -- score X.npy Y.npy MODEL.onnx...   (top-1 accuracy with ONNX Runtime)
if (args.Length > 0 && args[0] == "score")
    return Scalpel.Benchmarks.TrainSpeed.Score(args[1..]);

var config = DefaultConfig.Instance
    .AddJob(Job.Default.WithWarmupCount(5).WithIterationCount(15))
    .WithSummaryStyle(BenchmarkDotNet.Reports.SummaryStyle.Default.WithRatioStyle(BenchmarkDotNet.Columns.RatioStyle.Trend));
BenchmarkSwitcher.FromAssembly(typeof(Scalpel.Benchmarks.InferenceBenchmarks).Assembly).Run(args, config);
return 0;
