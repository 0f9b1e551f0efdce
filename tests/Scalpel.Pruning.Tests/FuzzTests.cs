using System.Collections.Concurrent;
using CsCheck;
using Google.Protobuf;
using Scalpel.CodeGen;
using Scalpel.Onnx;
using Scalpel.Onnx.Proto;
using Scalpel.Pruning.Data;
using Xunit;
using Xunit.Abstractions;

namespace Scalpel.Tests;

/// <summary>
/// Seeded mutational fuzzing of the fixture models and a .npy file: bit flips, truncations, overwrites, and
/// field-level protobuf edits (attributes, dims, inputs, op types, data types, opsets). Every case must end in
/// success or a ScalpelException (a SCALPEL#### error): no other exception, no hang, no partial output. Cases
/// come from CsCheck generators driven by a fixed seed, so a failure names a case that replays exactly.
/// </summary>
public sealed class FuzzTests(ITestOutputHelper output)
{
    private const ulong Seed = 20261130;
    private const int ModelCases = 2000;
    private const int NpyCases = 1000;
    private static readonly TimeSpan CaseLimit = TimeSpan.FromSeconds(20);

    private static readonly string[] Fixtures = ["mlp.onnx", "lenet5.onnx", "rescnn.onnx"];
    private static readonly long[] Interesting = [0, 1, -1, 2, 3, 5, 255, 65_536, int.MaxValue, int.MinValue, 1L << 31, 1L << 40, long.MaxValue, long.MinValue];
    private static readonly string[] Ops = ["Gemm", "MatMul", "Conv", "Relu", "Clip", "MaxPool", "AveragePool", "GlobalAveragePool", "BatchNormalization", "Add", "Mul", "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Concat", "Softmax", "LRN", "Constant", "Identity"];

    /// <summary>One mutation: which file, which kind, and numbers the kind interprets (positions, indices, a value).</summary>
    private sealed record Mutation(int File, int Kind, int A, int B, int C, long V)
    {
        public override string ToString() => $"file {File} kind {Kind} a={A} b={B} c={C} v={V}";
    }

    private static Gen<Mutation> Mutations(int files, int kinds) =>
        Gen.Select(Gen.Int[0, files - 1], Gen.Int[0, kinds - 1], Gen.Int[0, int.MaxValue], Gen.Int[0, int.MaxValue], Gen.Int[1, 8],
            Gen.Frequency((3, Gen.OneOf(Interesting)), (1, Gen.Long)))
        .Select((f, k, a, b, c, v) => new Mutation(f, k, a, b, c, v));

    private static List<Mutation> Cases(Gen<Mutation> gen, int count, ulong seed)
    {
        var pcg = new PCG(1, seed);
        return Enumerable.Range(0, count).Select(_ => gen.Generate(pcg, null, out Size _)).ToList();
    }

    // ---- byte-level mutations (shared by models and .npy) ---------------------------------------

    private static byte[] FlipBits(byte[] bytes, Mutation m, int within)
    {
        var copy = (byte[])bytes.Clone();
        var rng = new Random(m.A ^ m.B);
        for (int i = 0; i < m.C; i++) copy[rng.Next(Math.Min(within, copy.Length))] ^= (byte)(1 << rng.Next(8));
        return copy;
    }

    private static byte[] Truncate(byte[] bytes, Mutation m) => bytes[..(m.A % bytes.Length)];

    private static byte[] Overwrite(byte[] bytes, Mutation m, int within)
    {
        var copy = (byte[])bytes.Clone();
        var value = BitConverter.GetBytes(m.V);
        int at = m.A % Math.Min(within, copy.Length);
        for (int i = 0; i < m.C && at + i < copy.Length; i++) copy[at + i] = value[i];
        return copy;
    }

    // ---- protobuf field-level mutations -----------------------------------------------------------

    private const int ModelKinds = 12;

    private static byte[] MutateModel(byte[] fixture, Mutation m)
    {
        switch (m.Kind)
        {
            case 0: return FlipBits(fixture, m, fixture.Length);
            case 1: return Truncate(fixture, m);
            case 2: return Overwrite(fixture, m, fixture.Length);
        }
        var proto = ModelProto.Parser.ParseFrom(fixture);
        var g = proto.Graph;
        var node = g.Node[m.A % g.Node.Count];
        switch (m.Kind)
        {
            case 3: // an attribute's value
                if (node.Attribute.Count == 0) node.Attribute.Add(new AttributeProto { Name = "axis", Type = AttributeProto.Types.AttributeType.Int });
                var a = node.Attribute[m.B % node.Attribute.Count];
                if (a.Ints.Count > 0) a.Ints[m.C % a.Ints.Count] = m.V;
                else if (a.Type == AttributeProto.Types.AttributeType.Float) a.F = BitConverter.Int32BitsToSingle((int)m.V);
                else a.I = m.V;
                break;
            case 4: // an attribute's list length, or the attribute removed or repeated
                if (node.Attribute.Count == 0) break;
                var b = node.Attribute[m.B % node.Attribute.Count];
                switch (m.C % 4)
                {
                    case 0: node.Attribute.Remove(b); break;
                    case 1: node.Attribute.Add(b.Clone()); break;
                    case 2: b.Ints.Clear(); break;
                    default: b.Ints.Add(m.V); break;
                }
                break;
            case 5: // an initializer's dims
                var t = g.Initializer[m.B % g.Initializer.Count];
                if (m.C % 3 == 0) t.Dims.Add(m.V);
                else if (m.C % 3 == 1 && t.Dims.Count > 0) t.Dims.RemoveAt(m.A % t.Dims.Count);
                else if (t.Dims.Count > 0) t.Dims[m.A % t.Dims.Count] = m.V;
                break;
            case 6: // the graph input's shape
                var dims = g.Input[0].Type.TensorType.Shape.Dim;
                if (m.C % 3 == 0) dims.RemoveAt(m.B % dims.Count);
                else if (m.C % 3 == 1) dims.Add(new TensorShapeProto.Types.Dimension { DimValue = m.V });
                else dims[m.B % dims.Count].DimValue = m.V;
                break;
            case 7: // a node's inputs or outputs
                var names = g.Node.SelectMany(n => n.Output).Concat(g.Initializer.Select(i => i.Name)).Append("").ToList();
                switch (m.C % 4)
                {
                    case 0: node.Input.Clear(); break;
                    case 1: node.Output.Clear(); break;
                    case 2 when node.Input.Count > 0: node.Input[m.B % node.Input.Count] = names[(int)((ulong)m.V % (ulong)names.Count)]; break;
                    default: node.Input.Add(names[m.B % names.Count]); break;
                }
                break;
            case 8: // a node's operator, or the node removed or repeated
                switch (m.C % 3)
                {
                    case 0: node.OpType = Ops[m.B % Ops.Length]; break;
                    case 1: g.Node.Remove(node); break;
                    default: g.Node.Insert(m.B % g.Node.Count, node.Clone()); break;
                }
                break;
            case 9: // an initializer's data and element type
                var d = g.Initializer[m.B % g.Initializer.Count];
                switch (m.C % 4)
                {
                    case 0: d.RawData = d.RawData.Length == 0 ? d.RawData : ByteString.CopyFrom(d.RawData.Span[..(m.A % d.RawData.Length)]); break;
                    case 1: d.DataType = (int)((ulong)m.V % 20); break;
                    case 2: d.DataLocation = TensorProto.Types.DataLocation.External; d.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = m.V % 2 == 0 ? "w.bin" : "/etc/passwd" }); break;
                    default: d.FloatData.Add(BitConverter.Int32BitsToSingle((int)m.V)); break;
                }
                break;
            case 10: // opset and IR version
                if (m.C % 2 == 0) proto.OpsetImport[0].Version = m.V;
                else proto.IrVersion = m.V;
                break;
            default: // a Constant node with a hostile value
                var c = new NodeProto { OpType = "Constant", Name = "fuzz", Output = { m.C % 2 == 0 ? "fuzz_out" : g.Initializer[0].Name } };
                if (m.B % 3 == 0) c.Attribute.Add(new AttributeProto { Name = "value_ints", Type = AttributeProto.Types.AttributeType.Ints, Ints = { m.V, m.A } });
                else if (m.B % 3 == 1) c.Attribute.Add(new AttributeProto { Name = "value", Type = AttributeProto.Types.AttributeType.Tensor, T = new TensorProto { DataType = 1, Dims = { m.V } } });
                g.Node.Insert(m.A % (g.Node.Count + 1), c);
                if (g.Node.FirstOrDefault(n => n.OpType != "Constant" && n.Input.Count > 0) is { } reader) reader.Input[^1] = c.Output[0];
                break;
        }
        return proto.ToByteArray();
    }

    // ---- .npy mutations -------------------------------------------------------------------------

    private const int NpyKinds = 5;

    private static byte[] MutateNpy(byte[] npy, Mutation m)
    {
        switch (m.Kind)
        {
            case 0: return FlipBits(npy, m, 128); // mostly the header
            case 1: return Truncate(npy, m);
            case 2: return Overwrite(npy, m, 12); // magic, version, header length
            case 3: return FlipBits(npy, m, npy.Length); // mostly the data: NaN, infinities
        }
        // The header text: a shape, dtype or order value replaced.
        var text = System.Text.Encoding.Latin1.GetString(npy, 10, BitConverter.ToUInt16(npy, 8));
        var value = m.V.ToString(System.Globalization.CultureInfo.InvariantCulture);
        text = (m.C % 4) switch
        {
            0 => text.Replace("(16, 1, 28, 28)", $"({value}, 1, 28, 28)"),
            1 => text.Replace("(16, 1, 28, 28)", $"({(m.A % 2 == 0 ? "16L" : "16")}, {value})"),
            2 => text.Replace("'<f4'", m.A % 3 == 0 ? "'<f8'" : m.A % 3 == 1 ? "'|u1'" : $"'{value}'"),
            _ => text.Replace("False", m.A % 2 == 0 ? "True" : "None"),
        };
        var header = System.Text.Encoding.Latin1.GetBytes(text);
        return [.. npy[..8], .. BitConverter.GetBytes((ushort)header.Length), .. header, .. npy[(10 + BitConverter.ToUInt16(npy, 8))..]];
    }

    // ---- the runs -------------------------------------------------------------------------------

    /// <summary>Runs every case on two threads; a case that does not finish within the limit fails the test as a hang.</summary>
    private static async Task<List<string>> RunAll(IReadOnlyList<Mutation> cases, Func<int, Mutation, string?> run)
    {
        var failures = new ConcurrentBag<string>();
        var running = new ConcurrentDictionary<int, DateTime>();
        var work = Task.Run(() => Parallel.For(0, cases.Count, new ParallelOptions { MaxDegreeOfParallelism = 2 }, i =>
        {
            running[i] = DateTime.UtcNow;
            try
            {
                if (run(i, cases[i]) is { } failure) failures.Add($"case {i} ({cases[i]}): {failure}");
            }
            catch (Exception e) when (e is not ScalpelException)
            {
                failures.Add($"case {i} ({cases[i]}): {e.GetType().Name}: {e.Message}\n{e.StackTrace}");
            }
            running.TryRemove(i, out _);
        }));
        while (!work.IsCompleted)
        {
            await Task.WhenAny(work, Task.Delay(TimeSpan.FromSeconds(1)));
            foreach (var (i, since) in running)
                if (DateTime.UtcNow - since > CaseLimit)
                    return [$"case {i} ({cases[i]}) hung: still running after {CaseLimit.TotalSeconds} s"];
        }
        await work;
        return failures.OrderBy(f => f, StringComparer.Ordinal).ToList();
    }

    [Fact]
    public async Task MutatedModelsCompileOrFailWithAScalpelError()
    {
        var fixtures = Fixtures.Select(f => File.ReadAllBytes(TestData.Fixture(f))).ToArray();
        var cases = Cases(Mutations(Fixtures.Length, ModelKinds), ModelCases, Seed);
        var root = TestData.TempDir();
        var target = CodeTarget.Resolve("x64-avx2");
        var outcomes = new ConcurrentDictionary<string, int>();
        var compiled = new ConcurrentDictionary<int, GeneratedModel>();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var failures = await RunAll(cases, (i, m) =>
        {
            var dir = Path.Combine(root, i.ToString(System.Globalization.CultureInfo.InvariantCulture));
            Directory.CreateDirectory(dir);
            var path = Path.Combine(dir, "model.onnx");
            File.WriteAllBytes(path, MutateModel(fixtures[m.File], m));
            var outDir = Path.Combine(dir, "out");
            try
            {
                var result = ModelCompiler.Compile(path, target, outDir, $"Fuzz{i}", "Model");
                outcomes.AddOrUpdate("compiled", 1, (_, n) => n + 1);
                if (i < 200) compiled[i] = result.Code; // the sample to compile: the first successes, whatever the threads did
                var written = Directory.GetFiles(outDir).Select(Path.GetFileName).Order().ToArray();
                if (!written.SequenceEqual(["Model.bin", "Model.g.cs"])) return $"compiled, but the output folder holds {string.Join(", ", written)}";
            }
            catch (ScalpelException e)
            {
                outcomes.AddOrUpdate($"SCALPEL{(int)e.Code}", 1, (_, n) => n + 1);
                if (e.Message.Contains('\n')) return $"error message spans lines: {e.Message}";
                if (Directory.Exists(outDir) && Directory.EnumerateFileSystemEntries(outDir).Any()) return "failed, but left files in the output folder";
            }
            var left = Directory.GetFileSystemEntries(dir).Select(Path.GetFileName).Where(n => n is not ("model.onnx" or "out")).ToList();
            return left.Count == 0 ? null : $"left temporary files: {string.Join(", ", left)}";
        });
        output.WriteLine($"{cases.Count} mutated models (seed {Seed}) in {clock.Elapsed.TotalSeconds:0.0} s: {string.Join(", ", outcomes.OrderBy(o => o.Key).Select(o => $"{o.Key} {o.Value}"))}");
        Assert.True(failures.Count == 0, $"{failures.Count} of {cases.Count} cases failed:\n{string.Join("\n", failures.Take(10))}");

        // What compiled must be code that compiles: "success" with broken code is a failure too.
        var sample = compiled.OrderBy(c => c.Key).Take(16).ToList();
        Assert.NotEmpty(sample);
        GeneratedAssembly.Compile("Fuzz", sample.Select(c => c.Value.Source));
        output.WriteLine($"{sample.Count} of the successfully generated sources compiled with Roslyn");
        Directory.Delete(root, recursive: true);
    }

    [Fact]
    public async Task MutatedNpyFilesLoadOrFailWithAScalpelError()
    {
        // 16 images of the calibration fixture as a small .npy to mutate.
        var root = TestData.TempDir();
        var images = NpyFile.Read(TestData.Fixture("data/fmnist-calib-512-x.npy"), 16).Floats!;
        var basePath = Path.Combine(root, "base.npy");
        NpyFile.Write(basePath, images, 16, 1, 28, 28);
        var npy = File.ReadAllBytes(basePath);
        var cases = Cases(Mutations(1, NpyKinds), NpyCases, Seed + 1);
        var outcomes = new ConcurrentDictionary<string, int>();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var failures = await RunAll(cases, (i, m) =>
        {
            var path = Path.Combine(root, $"{i}.npy");
            File.WriteAllBytes(path, MutateNpy(npy, m));
            try
            {
                var data = Dataset.Load(path, null, [1, 28, 28], maxSamples: 8);
                outcomes.AddOrUpdate("loaded", 1, (_, n) => n + 1);
                if (data.Count is < 1 or > 8 || data.Inputs.Length != data.Count * 784) return $"loaded {data.Count} samples of {data.Inputs.Length} values";
            }
            catch (ScalpelException e)
            {
                outcomes.AddOrUpdate($"SCALPEL{(int)e.Code}", 1, (_, n) => n + 1);
                if (e.Message.Contains('\n')) return $"error message spans lines: {e.Message}";
                if (!e.Message.Contains(path)) return $"error does not name the file: {e.Message}";
            }
            return null;
        });
        output.WriteLine($"{cases.Count} mutated .npy files (seed {Seed + 1}) in {clock.Elapsed.TotalSeconds:0.0} s: {string.Join(", ", outcomes.OrderBy(o => o.Key).Select(o => $"{o.Key} {o.Value}"))}");
        Assert.True(failures.Count == 0, $"{failures.Count} of {cases.Count} cases failed:\n{string.Join("\n", failures.Take(10))}");
        Directory.Delete(root, recursive: true);
    }
}
