using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Running;

// dotnet run -c Release --project bench/Scalpel.Benchmarks -- --filter '*'
var config = DefaultConfig.Instance
    .AddJob(Job.Default.WithWarmupCount(5).WithIterationCount(15))
    .WithSummaryStyle(BenchmarkDotNet.Reports.SummaryStyle.Default.WithRatioStyle(BenchmarkDotNet.Columns.RatioStyle.Trend));
BenchmarkSwitcher.FromAssembly(typeof(Scalpel.Benchmarks.InferenceBenchmarks).Assembly).Run(args, config);
