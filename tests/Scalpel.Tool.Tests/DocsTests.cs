using System.CommandLine;
using System.Text.RegularExpressions;
using Scalpel.Onnx;
using Scalpel.Pruning;
using Scalpel.Pruning.Methods;
using Scalpel.Pruning.Targets;
using Scalpel.Tool;
using Xunit;

namespace Scalpel.Tests;

/// <summary>
/// The options' one description (OptionSpecs) agrees with the command line's options and help, with the
/// pipeline's defaults and types, and with the user documentation; the documentation lists every diagnostic code.
/// </summary>
public sealed class DocsTests
{
    private static string Doc(string name) => File.ReadAllText(Path.Combine(TestData.RepoRoot, "docs", name));

    /// <summary>The rows of the first Markdown table under a "## heading" (up to the next heading), as cells, header left out.</summary>
    private static List<string[]> Table(string doc, string heading)
    {
        int start = doc.IndexOf("\n## " + heading + "\n", StringComparison.Ordinal);
        Assert.True(start >= 0, $"no section '## {heading}'");
        int end = doc.IndexOf("\n## ", start + 4, StringComparison.Ordinal);
        var lines = doc[start..(end < 0 ? doc.Length : end)].Split('\n');
        return lines.SkipWhile(l => !l.StartsWith('|')).TakeWhile(l => l.StartsWith('|'))
            .Where(l => !l.StartsWith("|---", StringComparison.Ordinal)).Skip(1)
            .Select(l => Regex.Split(l.Trim().Trim('|'), @"(?<!\\)\|").Select(c => c.Trim()).ToArray())
            .ToList();
    }

    /// <summary>The names in backticks in a cell ("`TrainingData`, `TrainingLabels`"), each up to its first space.</summary>
    private static IEnumerable<string> Names(string cell) => Regex.Matches(cell, "`([^`]+)`").Select(m => m.Groups[1].Value.Split(' ')[0]);

    private static Command Prune => Program.BuildRoot().Subcommands.Single(c => c.Name == "prune");

    [Fact]
    public void MsbuildDocListsEveryDiagnosticCodeAndNoOther()
    {
        var documented = Regex.Matches(Doc("msbuild.md"), @"^\| (SCALPEL\d{4}) \|", RegexOptions.Multiline).Select(m => m.Groups[1].Value).Order().ToList();
        var codes = Enum.GetValues<ErrorCode>().Select(DiagnosticId.Of).Concat(Enum.GetValues<WarningCode>().Select(DiagnosticId.Of)).Order().ToList();
        Assert.Equal(codes, documented);
    }

    [Fact]
    public void MsbuildDocListsEveryMetadataWithItsDefaultAndValues()
    {
        var rows = Table(Doc("msbuild.md"), "The item");
        var documented = rows.SelectMany(r => Names(r[0])).Where(n => n != "Include").Order().ToList();
        Assert.Equal(OptionSpecs.All.Where(o => o.Metadata is not null).Select(o => o.Metadata!).Order(), documented);
        foreach (var option in OptionSpecs.All.Where(o => o.Metadata is not null && o.Kind != OptionKind.Text))
        {
            var row = rows.Single(r => Names(r[0]).Contains(option.Metadata));
            if (option.BuildDefault is { } value) Assert.True(row[1] == $"`{value}`" || row[1].StartsWith($"`{value}` ", StringComparison.Ordinal), $"{option.Metadata}: default `{value}`, documented as '{row[1]}'");
            foreach (var choice in option.Choices.Concat(option.Value?.Choices ?? []))
                Assert.True(string.Join(" | ", row).Contains($"`{choice}`", StringComparison.Ordinal), $"{option.Metadata}: the value '{choice}' is not documented");
        }
    }

    [Fact]
    public void PruningDocListsEveryCommandLineOptionAndNoOther()
    {
        var documented = Table(Doc("pruning.md"), "Options").SelectMany(r => Regex.Matches(r[0], "--[a-z-]+").Select(m => m.Value)).Order().ToList();
        Assert.Equal(OptionSpecs.All.Where(o => o.Option is not null).Select(o => o.Option!).Order(), documented);
    }

    [Fact]
    public void CommandLineOptionsAreTheSpecsWithTheirHelpAndDefaults()
    {
        var options = Prune.Options.Where(o => o.Name is not ("--help" or "-h" or "-?")).ToList();
        Assert.Equal(OptionSpecs.All.Where(o => o.Option is not null).Select(o => o.Option!), options.Select(o => o.Name));
        foreach (var option in options)
        {
            var spec = OptionSpecs.All.Single(s => s.Option == option.Name);
            Assert.Equal(spec.Help, option.Description);
            Assert.Equal(spec.Default is not null, option.HasDefaultValue);
        }
        // compile shares the output options and the model size limit.
        var compile = Program.BuildRoot().Subcommands.Single(c => c.Name == "compile").Options.Where(o => o.Name.StartsWith("--", StringComparison.Ordinal) && o.Name != "--help");
        foreach (var option in compile) Assert.Equal(OptionSpecs.All.Single(s => s.Option == option.Name).Help, option.Description);
    }

    [Fact]
    public void SpecsAgreeWithThePipelinesTypesAndDefaults()
    {
        static string[] Lower<T>() where T : struct, Enum => Enum.GetNames<T>().Select(n => n.ToLowerInvariant()).ToArray();
        Assert.Equal(Lower<Method>(), OptionSpecs.Method.Choices);
        Assert.Equal(Lower<Criterion>().Order(), OptionSpecs.Criterion.Choices.Order());
        Assert.Equal(Lower<NodeSelection>(), OptionSpecs.NodeSelection.Choices);
        Assert.Equal(Lower<Technique>(), OptionSpecs.Technique.Value!.Choices);
        Assert.Contains(string.Join(", ", TargetProfile.BuiltInNames) + ", or a profile .json file", OptionSpecs.Target.Help);
        Assert.Equal(OnnxModel.DefaultMaxTensorBytes, (long)OptionSpecs.MaxModelBytes.DefaultNumber);
        // The defaults the pipeline's records take from the specs, as the literals they were (outputs stay byte-identical).
        var options = new PruneOptions { ModelPath = "m.onnx", Target = TargetProfile.Resolve("host"), Namespace = "N", ClassName = "C" };
        Assert.Equal((0.5, 0.99, Method.Scalpel), (options.MaxAccuracyDrop, options.MinAgreement, options.Method));
        var r = options.Retraining;
        Assert.Equal((3, 8, 1e-3f, 0.5f, 0.02f, NodeSelection.Filter), (r.EpochsPerStep, r.MaxSteps, r.LearningRate, r.Distillation, r.GatePenalty, r.NodeSelection));
        options.Validate(); // the defaults are good values
    }

    [Theory]
    [InlineData(100.0, true)]
    [InlineData(0.0, true)]
    [InlineData(100.5, false)]
    [InlineData(-0.1, false)]
    [InlineData(double.NaN, false)]
    public void ANumberIsCheckedAgainstItsRange(double value, bool good)
    {
        Assert.Equal(good, OptionSpecs.MaxAccuracyDrop.Check(value) is null);
        Assert.Equal(good, OptionSpecs.MaxAccuracyDrop.Parse(value.ToString("R", System.Globalization.CultureInfo.InvariantCulture), "MaxAccuracyDrop", out _) is null);
    }

    [Fact]
    public void ValuesParseAsTheCommandLineTakesThem()
    {
        Assert.Null(OptionSpecs.Method.Parse("Traditional", "Method", out var method));
        Assert.Equal("traditional", method);
        Assert.Null(OptionSpecs.Measure.Parse("True", "MeasureLayers", out var measure));
        Assert.Equal("true", measure);
        Assert.Null(OptionSpecs.MaxAccuracyDrop.Parse("1e1", "MaxAccuracyDrop", out var drop));
        Assert.Equal("10", drop);
        Assert.Equal("RetrainEpochs is 2.5; expected a whole number from 1 to 1000.", OptionSpecs.Epochs.Parse("2.5", "RetrainEpochs", out _));
        Assert.Equal("MaxModelBytes is 0; expected a whole number of 1 or more.", OptionSpecs.MaxModelBytes.Parse("0", "MaxModelBytes", out _));
        Assert.Equal("Technique 'conv=nod': expected NAME=weight, NAME=csr or NAME=node. Did you mean 'node'?", OptionSpecs.Technique.Parse("conv=nod", "Technique", out _));
        Assert.Equal("Sparsity '=0.5': expected NAME=FRACTION with FRACTION in [0, 1).", OptionSpecs.Sparsity.Parse("=0.5", "Sparsity", out _));
        Assert.Null(OptionSpecs.Sparsity.Parse("/1/Gemm=0.5", "Sparsity", out _));
    }
}
