using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Scalpel.CodeGen;
using Scalpel.Onnx;
using Scalpel.Onnx.Layers;
using Scalpel.Onnx.Proto;
using Xunit;
using static Scalpel.Tests.OnnxGraphs;

namespace Scalpel.Tests;

/// <summary>
/// Names from a model or a target profile are attacker-controlled: in generated code they may only ever be comment
/// text. Code generated from hostile names must parse to the same tokens and directives as code from plain names.
/// </summary>
public sealed class CodeInjectionTests
{
    /// <summary>Every C# line terminator, comment and directive breakers, quotes, escapes, XML and a payload.</summary>
    public static readonly string[] HostileNames =
    [
        "a\rb", "a\nb", "a\r\nb", "a\u0085b", "a\u2028b", "a\u2029b", "a\u000Bb\u000Cc",
        "x */ class Evil { } /*", "#endregion\n#region", "\u2028#endregion\u2028static int Evil = 1;\u2028#region ",
        "\u2028}; static Mlp() { System.Environment.Exit(42); } //", "\"quoted\" 'single' \\back\\slash\\",
        "</summary><code>x</code>", "\0nul", "emoji \U0001F600 and \uD800 lone surrogate", "@\"verbatim\" $\"{interp}\"",
    ];

    private static ModelProto Mlp(Func<int, string> nodeName, Func<int, string> tensorName)
    {
        var rng = new Random(3);
        float[] Values(int n) => Enumerable.Range(0, n).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray();
        string T(int i) => tensorName(i);
        var graph = new GraphProto
        {
            Name = nodeName(99), DocString = nodeName(98),
            Input = { BatchOf(T(0), 8) }, Output = { BatchOf(T(5), 4) },
            Initializer = { Floats(T(1), Values(8 * 6), 8, 6), Floats(T(2), Values(6 * 4), 6, 4) },
        };
        graph.Node.Add(new NodeProto { OpType = "MatMul", Name = nodeName(0), DocString = nodeName(10), Input = { T(0), T(1) }, Output = { T(3) } });
        graph.Node.Add(new NodeProto { OpType = "Relu", Name = nodeName(1), DocString = nodeName(11), Input = { T(3) }, Output = { T(4) } });
        graph.Node.Add(new NodeProto { OpType = "MatMul", Name = nodeName(2), DocString = nodeName(12), Input = { T(4), T(2) }, Output = { T(5) } });
        var model = Model(graph);
        model.DocString = nodeName(97);
        model.ProducerName = nodeName(96);
        return model;
    }

    private static GeneratedModel Emit(ModelProto proto, string modelName, string targetName) =>
        CSharpEmitter.Emit(GraphAnalyzer.Analyze(new OnnxModel(proto, null, modelName)),
            new EmitOptions("Injection", "Mlp", new CodeTarget(targetName, 256, true), modelName));

    private static (string[] Tokens, string[] Directives, int Comments) Structure(string source)
    {
        var root = CSharpSyntaxTree.ParseText(source).GetRoot();
        Assert.Empty(root.GetDiagnostics());
        var trivia = root.DescendantTrivia(descendIntoTrivia: true).ToList();
        return (root.DescendantTokens().Select(t => t.Text).ToArray(),
            trivia.Where(t => t.IsDirective).Select(t => t.Kind().ToString()).ToArray(),
            trivia.Count(t => t.IsKind(SyntaxKind.SingleLineCommentTrivia) || t.IsKind(SyntaxKind.SingleLineDocumentationCommentTrivia)));
    }

    [Fact]
    public void HostileNamesOnlyEverBecomeEscapedCommentText()
    {
        var plain = Emit(Mlp(i => $"n{i}", i => $"t{i}"), "plain.onnx", "plain");
        var expected = Structure(plain.Source);
        foreach (var name in HostileNames)
        {
            var hostile = Emit(Mlp(i => name + i, i => name + "t" + i), name + ".onnx", name);
            var actual = Structure(hostile.Source);
            Assert.Equal(expected.Tokens, actual.Tokens);
            Assert.Equal(expected.Directives, actual.Directives);
            Assert.Equal(expected.Comments, actual.Comments);
            Assert.Equal(plain.Weights, hostile.Weights);
            Assert.Equal(CodeText.Comment(name + "0"), CodeText.Comment(name + "0").Trim());
            Assert.Contains(CodeText.Comment(name + "0"), hostile.Source);
            foreach (var ch in hostile.Source)
                Assert.True(ch == '\n' || ch >= ' ' && ch < 0x7F, $"{Escape(name)}: character U+{(int)ch:X4} in the generated code");
        }
        // And it compiles, strictly, into a class that runs.
        var all = HostileNames.Select((n, i) => CSharpEmitter.Emit(GraphAnalyzer.Analyze(new OnnxModel(Mlp(j => n + j, j => "t" + j), null, n)),
            new EmitOptions($"Injection{i}", "Mlp", new CodeTarget(n, 256, true), n))).ToList();
        var assembly = GeneratedAssembly.Compile("Injection", all.Select(a => a.Source));
        var output = new float[4];
        assembly.Instantiate("Injection0.Mlp", all[0].Weights)(new float[8], output, 1);
    }

    [Fact]
    public void CommentTextKeepsOnlyTheAllowList()
    {
        Assert.Equal("conv1/Conv_0 a.b-c:d", CodeText.Comment("conv1/Conv_0 a.b-c:d"));
        Assert.Equal("a\\u2028b\\u002A/c\\u0023\\u0022", CodeText.Comment("a\u2028b*/c#\""));
        Assert.Equal("\\uD83D\\uDE00", CodeText.Comment("\U0001F600"));
        var longName = new string('x', 10_000);
        Assert.True(CodeText.Comment(longName).Length <= CodeText.MaxCommentLength + 3);
    }

    [Theory]
    [InlineData("Demo", "class")]
    [InlineData("Demo", "Weights")]
    [InlineData("Demo", "Run")]
    [InlineData("Demo", "InputShape")]
    [InlineData("Demo", "Vector256")]
    [InlineData("Demo", "Mlp\n")]
    [InlineData("Demo", "Mlp\r\n")]
    [InlineData("Demo", "Ml\u2028p")]
    [InlineData("Demo", "mlp")]
    [InlineData("Demo", "Mlp.Inner")]
    [InlineData("Demo", "9Lives")]
    [InlineData("Demo", "Mlp; class X")]
    [InlineData("Demo.namespace", "Mlp")]
    [InlineData("Demo.__Math", "Mlp")]
    [InlineData("Demo\n", "Mlp")]
    [InlineData("Demo..X", "Mlp")]
    [InlineData("", "Mlp")]
    public void BadClassOrNamespaceNamesAreOptionErrors(string ns, string className)
    {
        var model = GraphAnalyzer.Analyze(new OnnxModel(Mlp(i => $"n{i}", i => $"t{i}"), null, "m.onnx"));
        var e = Assert.Throws<ScalpelException>(() => CSharpEmitter.Emit(model, new EmitOptions(ns, className, CodeTarget.Resolve("x64-avx2"), "m.onnx")));
        Assert.Equal(ErrorCode.Option, e.Code);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void GeneratedCodeNamesOnlyItsOwnTypesUnqualified()
    {
        // Any identifier the generated code uses as a qualifier (Math.Min, Vector256.Create) would be shadowed by a
        // class or namespace of that name in the user's code: framework types are written global::-qualified, so
        // only the generated class's own members may appear unqualified, whatever the kernels call.
        var used = new HashSet<string>(StringComparer.Ordinal);
        foreach (var fixture in new[] { "mlp", "lenet5", "rescnn" })
            foreach (var target in new[] { "x64-sse", "x64-avx2", "x64-avx512" })
            {
                var code = ModelCompiler.Generate(TestData.Fixture(fixture + ".onnx"), CodeTarget.Resolve(target), "Demo", "Model");
                var root = CSharpSyntaxTree.ParseText(code.Source).GetRoot();
                foreach (var access in root.DescendantNodes().OfType<Microsoft.CodeAnalysis.CSharp.Syntax.MemberAccessExpressionSyntax>())
                    if (access.Expression is Microsoft.CodeAnalysis.CSharp.Syntax.SimpleNameSyntax simple && char.IsUpper(simple.Identifier.Text[0]))
                        used.Add(simple.Identifier.Text);
            }
        Assert.NotEmpty(used);
        Assert.Equal("", string.Join(", ", used.Where(name => !GeneratedNames.Members.Contains(name)).Order()));
    }

    [Fact]
    public void TypesOfTheUsersNamedLikeFrameworkTypesDoNotCaptureTheGeneratedCode()
    {
        // The generated class lives in the user's namespace, beside their types; one named Span or Math must not
        // change what the generated code means (it names framework types global::-qualified); nor may a namespace Math.
        var model = GraphAnalyzer.Analyze(OnnxModel.Load(TestData.Fixture("rescnn.onnx")));
        var target = CodeTarget.Resolve("x64-avx2");
        var code = CSharpEmitter.Emit(model, new EmitOptions("Demo.Math", "Model", target, "rescnn.onnx"));
        const string decoys = """
            namespace Demo
            {
                public class Span { } public class ReadOnlySpan { } public class MathF { } public class Unsafe { }
                public class MemoryMarshal { } public class Stream { } public class Array { } public class Vector512 { } public class Vector128 { }
                public class BinaryPrimitives { } public class ArgumentException { } public class SHA256 { } public class Interlocked { }
            }
            namespace Demo.Math { public class System { } public class MethodImpl { } public class GeneratedCode { } }
            """;
        var run = GeneratedAssembly.Compile("Decoys", [code.Source, decoys]).Instantiate("Demo.Math.Model", code.Weights);
        var plain = GeneratedAssembly.CompileOne(CSharpEmitter.Emit(model, new EmitOptions("Plain", "Model", target, "rescnn.onnx")), "Plain");
        var rng = new Random(5);
        var x = Enumerable.Range(0, 3 * model.InputSize).Select(_ => (float)rng.NextDouble()).ToArray();
        var (a, b) = (new float[3 * model.OutputSize], new float[3 * model.OutputSize]);
        run(x, a, 3);
        plain(x, b, 3);
        Assert.Equal(b, a); // the same code, so the same bits
    }

    private static string Escape(string s) => string.Concat(s.Select(c => c < ' ' || c > '~' ? $"\\u{(int)c:X4}" : c.ToString()));
}
