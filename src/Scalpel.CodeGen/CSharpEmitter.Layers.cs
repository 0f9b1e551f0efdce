using Scalpel.Onnx;
using Scalpel.Onnx.Layers;

namespace Scalpel.CodeGen;

/// <summary>One layer's kernel method and its weights, per layer type.</summary>
public sealed partial class CSharpEmitter
{
    /// <summary>How the run calls a layer's method: with every sample of the chunk at once, or once per sample.</summary>
    private sealed record Call(string Method, List<string> Args, bool WholeChunk = false);

    /// <summary>Emits layer <paramref name="index"/>'s method and weights; returns its call, or null when it does no work.</summary>
    private sealed class LayerEmitter(CSharpEmitter e, int index, string id, string title) : ILayerVisitor<Call?>
    {
        private readonly KernelEmitter _k = e._kernels;
        private readonly CodeWriter _m = e._methods;
        /// <summary>The buffer the layer writes, once <see cref="Begin"/> has chosen it.</summary>
        private string _output = "";

        /// <summary>Chooses the output buffer and opens the layer's region; returns the arguments so far: inputs, output, a fused skip.</summary>
        private List<string> Begin(Layer layer, FusedConv? fused = null, string? inPlace = null)
        {
            var written = fused?.Output ?? layer.Output;
            _output = written == e._model.OutputName ? "output"
                : e.ActivationBuffer(Shape.Size(layer.OutputShape), index, [layer.Output, .. fused?.Folded.Select(f => f.Output) ?? []], inPlace);
            var args = layer.Inputs.Select(i => e._storage[i]).ToList();
            e._storage[layer.Output] = _output;
            if (fused is not null)
                foreach (var f in fused.Folded) e._storage[f.Output] = _output;
            args.Add(_output);
            if (fused?.Residual is { } skip) args.Add(e._storage[skip]);
            _m.Line().Line($"#region {id}: {title}");
            return args;
        }

        private string Method(Layer layer) => $"{id}_{layer.Kind}";
        private string Section(string name, Array data) => e.Section($"{id}_{name}", data);
        private string Operand(Operand o, string name) => o.Constant is { } c ? Section(name, c.Data) : e._storage[o.Name!];

        /// <summary>A layer whose method reads only its inputs and writes its output (over the input <paramref name="inPlace"/> where that is safe).</summary>
        private Call Plain(Layer layer, Action<CodeWriter, string> kernel, string? inPlace = null)
        {
            var args = Begin(layer, inPlace: inPlace);
            kernel(_m, Method(layer));
            return new(Method(layer), args);
        }

        public Call Visit(DenseLayer d)
        {
            var args = Begin(d);
            e._choices.Add(_k.Choice(d));
            if (d.Format != WeightFormat.Dense)
            {
                var sparse = e.SparseSections(id, d, args);
                _k.SparseDense(_m, $"{id}_{d.Format}", d, sparse);
                return new($"{id}_{d.Format}", args, WholeChunk: RunsOnChunk(d));
            }
            args.Add(Section("Weight", d.Weight));
            if (d.Bias is not null) args.Add(Section("Bias", d.Bias));
            if (d.BiasFull is not null) args.Add(Section("Bias", d.BiasFull));
            if (d.TransposeInput) args.Add(e.Scratch(0, checked(d.InputRows * d.K)));
            _k.Dense(_m, Method(d), d);
            return new(Method(d), args, WholeChunk: RunsOnChunk(d));
        }

        public Call Visit(ConvLayer c)
        {
            var fused = c.Format == WeightFormat.Dense ? e.Fuse(c, index) : null;
            var args = Begin(c, fused);
            var epilogue = fused?.Epilogue ?? Epilogue.Of(c.Activation);
            e._choices.Add(_k.Choice(c, epilogue));
            if (c.Format != WeightFormat.Dense)
            {
                // A sparse conv runs as a sparse dense layer over im2col patch rows ([positions x C*KH*KW]).
                var asDense = KernelEmitter.AsDense(c);
                var sparse = e.SparseSections(id, asDense, args);
                args.Add(e.Scratch(0, checked(asDense.K * c.Window.OH * c.Window.OW)));
                args.Add(e.Scratch(1, checked(c.M * c.Window.OH * c.Window.OW)));
                var method = $"{id}_{(c.Format == WeightFormat.Csr ? "CsrConv" : "GroupedCsrConv")}";
                _k.SparseConv(_m, method, c, asDense, sparse);
                return new(method, args);
            }
            if (_k.UsesWinogradTiles(c))
            {
                // The weight file keeps the kernels; loading transforms them (36 points where a kernel has k x k).
                args.Add(Section("Weight", c.Weight));
                e._winograd.Add(($"{id}_Weight", c.M, c.C, c.Window.KH, Tiles: true));
                if (c.Bias is not null) args.Add(Section("Bias", _k.ChannelPackedBias(c)));
                var (padded, transformed, products, pixelMajor) = _k.WinogradTilesBufferSizes(c);
                args.Add(e.Scratch(3, padded));
                args.Add(e.Scratch(0, transformed));
                args.Add(e.Scratch(1, products));
                args.Add(e.Scratch(2, pixelMajor));
            }
            else if (_k.UsesWinograd(c))
            {
                // The weight file keeps the kernels; loading transforms them (6 products of k columns take more than k x k).
                args.Add(Section("Weight", c.Weight));
                e._winograd.Add(($"{id}_Weight", c.M, c.C, c.Window.KH, Tiles: false));
                if (c.Bias is not null) args.Add(Section("Bias", c.Bias));
                var (padded, transformed, products) = _k.WinogradBufferSizes(c);
                args.Add(e.Buffer($"_{id}_padded", padded, "zero-padded input copy, whole tiles of rows"));
                args.Add(e.Scratch(0, transformed));
                args.Add(e.Scratch(1, products));
            }
            else if (_k.UsesChannelVectors(c))
            {
                args.Add(Section("Weight", _k.ChannelPackedWeights(c)));
                if (c.Bias is not null) args.Add(Section("Bias", _k.ChannelPackedBias(c)));
                args.Add(e.Scratch(0, _k.ChannelBufferSize(c)));
            }
            else
            {
                args.Add(Section("Weight", c.Weight));
                if (c.Bias is not null) args.Add(Section("Bias", c.Bias));
                if (_k.UsesDepthwiseKernel(c, epilogue))
                    args.Add(e.Buffer($"_{id}_padded", _k.DepthwiseBufferSize(c), "one channel's zero-padded plane"));
                else if (KernelEmitter.UsesPaddedInput(c))
                {
                    args.Add(e.Buffer($"_{id}_padded", _k.PaddedBufferSize(c), "zero-padded input copy, split into stride phases"));
                    if (!_k.StoresRows(c)) args.Add(e.Scratch(0, _k.WideBufferSize(c)));
                }
            }
            _k.Conv(_m, Method(c), c, fused?.Epilogue);
            return new(Method(c), args);
        }

        public Call Visit(PoolLayer p) => Plain(p, (w, method) => _k.Pool(w, method, p));
        public Call Visit(GlobalPoolLayer g) => Plain(g, (w, method) => _k.GlobalPool(w, method, g));
        public Call Visit(UnaryLayer u) => Plain(u, (w, method) => _k.Unary(w, method, u), inPlace: u.Inputs[0]);
        public Call Visit(SoftmaxLayer s) => Plain(s, (w, method) => _k.Softmax(w, method, s));
        public Call Visit(LrnLayer lrn) => Plain(lrn, (w, method) => _k.Lrn(w, method, lrn));
        public Call Visit(StridedCopyLayer copy) => Plain(copy, (w, method) => _k.StridedCopy(w, method, copy));
        public Call Visit(PadLayer pad) => Plain(pad, (w, method) => _k.Pad(w, method, pad));

        /// <summary>Same data with a new shape: the output is the input's storage.</summary>
        public Call? Visit(ReshapeLayer r)
        {
            e._storage[r.Output] = e._storage[r.Inputs[0]];
            return null;
        }

        public Call Visit(ScaleShiftLayer s)
        {
            var args = Begin(s);
            args.Add(Section("Scale", s.Scale));
            args.Add(Section("Shift", s.Shift));
            _k.ScaleShift(_m, Method(s), s);
            return new(Method(s), args);
        }

        public Call Visit(BinaryLayer b)
        {
            // In place over the operand of the output's shape (the other may broadcast).
            var full = new[] { b.A, b.B }.FirstOrDefault(o => o.Name is not null && Shape.Size(o.Shape) == Shape.Size(b.OutputShape));
            Begin(b, inPlace: full?.Name);
            var args = new List<string> { Operand(b.A, "A"), Operand(b.B, "B"), _output };
            _k.Binary(_m, Method(b), b);
            return new(Method(b), args);
        }

        public Call Visit(ConcatLayer cat)
        {
            Begin(cat);
            var args = cat.Operands.Select((o, i) => Operand(o, $"Const{i}")).Append(_output).ToList();
            _k.Concat(_m, Method(cat), cat);
            return new(Method(cat), args);
        }

        public Call Visit(GatherLayer gather)
        {
            var args = Begin(gather);
            args.Add(Section("Indices", gather.Indices));
            _k.Gather(_m, Method(gather), gather);
            return new(Method(gather), args);
        }

        public Call Visit(ResizeLayer resize)
        {
            var args = Begin(resize);
            if (resize is { Upper: { } upper, Fraction: { } fraction })
            {
                var axes = Enumerable.Range(0, upper.Length).Where(d => upper[d] is not null).ToList();
                foreach (var d in axes)
                {
                    args.Add(Section($"Lower{d}", resize.Source[d]));
                    args.Add(Section($"Upper{d}", upper[d]!));
                    args.Add(Section($"Fraction{d}", fraction[d]!));
                }
                _k.LinearResize(_m, Method(resize), resize, axes);
                return new(Method(resize), args);
            }
            // The index tables go in the weight file, so a large output does not make a large source file.
            var tables = Enumerable.Range(0, resize.OutputShape.Length)
                .Where(d => resize.InputShape[d] > 1 && !resize.Source[d].SequenceEqual(Enumerable.Range(0, resize.OutputShape[d]))).ToList();
            foreach (var d in tables) args.Add(Section($"Source{d}", resize.Source[d]));
            _k.Resize(_m, Method(resize), resize, tables);
            return new(Method(resize), args);
        }
    }
}
