using Scalpel.Onnx;
using Scalpel.Onnx.Layers;

namespace Scalpel.Pruning.Training;

public sealed partial class Network
{
    /// <summary>
    /// Builds one layer's training step and adds its parameters (weight, bias, gate, in that order) to
    /// <paramref name="parameters"/>; refuses a layer retraining has no gradient for rather than run it as something else.
    /// </summary>
    private sealed class StepFactory(Network net, Layer layer, int[] inputs, int output, List<Parameter> parameters,
        IReadOnlySet<Layer>? masked, IReadOnlySet<Layer>? gated) : ILayerVisitor<Step>
    {
        private Parameter Param(ParameterRole role, float[] value, bool mask)
        {
            var p = new Parameter(layer, role, value, mask ? value.Select(v => v == 0 ? 0f : 1f).ToArray() : null);
            parameters.Add(p);
            return p;
        }

        private Parameter Weight(WeightedLayer l) => Param(ParameterRole.Weight, l.Weight, masked?.Contains(l) == true);
        private Parameter? Bias(WeightedLayer l) => l.Bias is null ? null : Param(ParameterRole.Bias, l.Bias, false);
        /// <summary>A gate per output, initially 1, when the caller asked for one and the step can apply it.</summary>
        private Parameter? Gate(WeightedLayer l, bool applies) =>
            gated?.Contains(l) == true && applies ? Param(ParameterRole.Gate, Enumerable.Repeat(1f, l.Rows).ToArray(), false) : null;

        private UnsupportedModelException Refused(string supported) =>
            new($"{net.Model.Source}: node '{layer.Name}' ({layer.Kind}) cannot be retrained; retraining supports {supported}");

        private UnsupportedModelException Unsupported() =>
            Refused("Gemm, MatMul, Conv, pools, activations, BatchNormalization, Add/Sub/Mul, Concat, Flatten/Reshape and Softmax.");

        /// <summary>Retraining has gradients for these activations and Add/Sub/Mul only.</summary>
        private UnsupportedModelException UnsupportedElementwise() =>
            Refused("Relu, LeakyRelu, Clip, Sigmoid and Tanh activations and Add/Sub/Mul. Prune without --train.");

        public Step Visit(DenseLayer d) => new DenseStep(d, inputs[0], output, Weight(d), Bias(d), Gate(d, d.InputRows == 1));
        public Step Visit(ConvLayer c) => new ConvStep(c, inputs[0], output, Weight(c), Bias(c), Gate(c, true));
        public Step Visit(PoolLayer p) => new PoolStep(p, inputs[0], output);
        public Step Visit(GlobalPoolLayer g) => new GlobalPoolStep(g, inputs[0], output);
        public Step Visit(ScaleShiftLayer s) => new ScaleShiftStep(s, inputs[0], output);
        public Step Visit(ReshapeLayer r) => new CopyStep(inputs[0], output);
        public Step Visit(ConcatLayer c) => new ConcatStep(c, net, output);
        public Step Visit(SoftmaxLayer s) => new SoftmaxStep(s, inputs[0], output);

        public Step Visit(BinaryLayer b) =>
            b.Op is BinaryOp.Add or BinaryOp.Sub or BinaryOp.Mul ? new BinaryStep(b, net, output) : throw UnsupportedElementwise();

        public Step Visit(UnaryLayer u) =>
            u.Function is UnaryFunction.Relu or UnaryFunction.Sigmoid or UnaryFunction.Tanh or UnaryFunction.LeakyRelu or UnaryFunction.Clip
                ? new UnaryStep(u, inputs[0], output) : throw UnsupportedElementwise();

        public Step Visit(LrnLayer lrn) => throw Unsupported();
        public Step Visit(StridedCopyLayer copy) => throw Unsupported();
        public Step Visit(GatherLayer gather) => throw Unsupported();
        public Step Visit(PadLayer pad) => throw Unsupported();
        public Step Visit(ResizeLayer resize) => throw Unsupported();
    }
}
