using System.Numerics.Tensors;
using Scalpel.Onnx;
using Scalpel.Onnx.Layers;

namespace Scalpel.Pruning.Training;

/// <summary>What a trained parameter is to its layer.</summary>
public enum ParameterRole
{
    Weight,
    Bias,
    /// <summary>A learned per-output-channel scale, for node selection.</summary>
    Gate,
}

/// <summary>A weight or bias the trainer updates, with the mask of entries pruning kept (null: all kept).</summary>
public sealed class Parameter(Layer layer, ParameterRole role, float[] value, float[]? mask)
{
    public Layer Layer { get; } = layer;
    public ParameterRole Role { get; } = role;
    /// <summary>The layer's own array: updates are visible to the layer (and so to codegen and write-back).</summary>
    public float[] Value { get; } = value;
    /// <summary>1 where the entry is kept, 0 where pruning removed it; it stays 0 through training.</summary>
    public float[]? Mask { get; } = mask;
    public override string ToString() => $"{Layer.Name} {Role}";
}

/// <summary>
/// The analysed model as a trainable network: forward and backward passes over a batch of samples, with the
/// exact semantics of the generated code (fused activations, padding, broadcasting). Dense and Conv weights
/// and biases train; everything else (an unfused BatchNorm's scale and shift, constant operands) is frozen
/// and passes gradients through, as when fine-tuning a network in inference mode.
/// </summary>
public sealed partial class Network
{
    public ModelGraph Model { get; }
    /// <summary>The parameters that train (the others are frozen: read, never updated).</summary>
    public IReadOnlyList<Parameter> Parameters { get; }
    internal IReadOnlyList<Parameter> AllParameters { get; }
    /// <summary>The tensor the loss reads: the output, or the input of a final Softmax/LogSoftmax (logits).</summary>
    public string LogitsName { get; }
    public int Classes { get; }

    internal readonly int[] Sizes;                 // floats per sample, by tensor id
    internal readonly Dictionary<string, int> Ids; // tensor name -> id
    internal readonly Step[] Steps;                // layers to run, in order (a final softmax excluded)
    internal readonly int InputId, LogitsId;

    /// <param name="masked">Layers whose zero weights are pruned entries to keep at zero.</param>
    /// <param name="trainable">Whether a layer's weight or bias trains (default: all).</param>
    /// <param name="gated">Dense or Conv layers whose output channels get a learned gate (initially 1), applied after the activation.</param>
    public Network(ModelGraph model, IReadOnlySet<Layer>? masked = null, Func<Layer, ParameterRole, bool>? trainable = null, IReadOnlySet<Layer>? gated = null)
    {
        if (model.BatchMode != BatchMode.PerSample)
            throw new UnsupportedModelException($"{model.Source}: training needs a model whose first input dimension is the batch (symbolic or 1).");
        Model = model;
        Ids = new Dictionary<string, int>(StringComparer.Ordinal);
        var sizes = new List<int>();
        int Id(string name)
        {
            if (Ids.TryGetValue(name, out int id)) return id;
            Ids[name] = sizes.Count;
            sizes.Add(Shape.Size(model.Shapes[name]));
            return sizes.Count - 1;
        }
        InputId = Id(model.InputName);
        var layers = model.Layers;
        var last = layers[^1];
        bool finalSoftmax = last is SoftmaxLayer s && s.Output == model.OutputName && s.Inner == 1 && s.Outer == 1;
        LogitsName = finalSoftmax ? last.Inputs[0] : model.OutputName;
        var parameters = new List<Parameter>();
        var steps = new List<Step>();
        foreach (var layer in finalSoftmax ? layers.Take(layers.Count - 1) : layers)
        {
            var inputs = layer.Inputs.Select(Id).ToArray();
            int output = Id(layer.Output);
            steps.Add(layer.Accept(new StepFactory(this, layer, inputs, output, parameters, masked, gated)));
        }
        Sizes = sizes.ToArray();
        Steps = steps.ToArray();
        AllParameters = parameters;
        Parameters = parameters.Where(p => trainable?.Invoke(p.Layer, p.Role) ?? true).ToList();
        LogitsId = Ids[LogitsName];
        Classes = Sizes[LogitsId];
    }

    internal int IdOf(string name) => Ids[name];

    /// <summary>Runs one sample forward; the logits stay in the workspace.</summary>
    public ReadOnlySpan<float> Forward(Workspace ws, ReadOnlySpan<float> input)
    {
        input.CopyTo(ws.Values[InputId]);
        Forward(ws.Alone, 1);
        return ws.Values[LogitsId];
    }

    /// <summary>
    /// Runs the first <paramref name="count"/> workspaces of a batch (from <see cref="CreateBatch"/>) forward together,
    /// their inputs already in <see cref="Input"/>: Dense and Conv layers multiply whole matrices of samples.
    /// </summary>
    public void Forward(Workspace[] batch, int count)
    {
        foreach (var step in Steps) step.Forward(batch, count);
    }

    /// <summary>Where a workspace's input goes before <see cref="Forward(Workspace[], int)"/>.</summary>
    public Span<float> Input(Workspace ws) => ws.Values[InputId];

    /// <summary>The logits of the sample last run forward in the workspace.</summary>
    public ReadOnlySpan<float> Logits(Workspace ws) => ws.Values[LogitsId];

    /// <summary>Backpropagates dLoss/dLogits of the sample last run forward, adding parameter gradients into the workspace.</summary>
    public void Backward(Workspace ws, ReadOnlySpan<float> logitsGradient)
    {
        LogitsGradient(ws, logitsGradient);
        Backward(ws.Alone, 1);
    }

    /// <summary>Sets dLoss/dLogits of one sample of a batch (and clears its other gradients) before <see cref="Backward(Workspace[], int)"/>.</summary>
    public void LogitsGradient(Workspace ws, ReadOnlySpan<float> logitsGradient)
    {
        foreach (var g in ws.Gradients) Array.Clear(g);
        logitsGradient.CopyTo(ws.Gradients[LogitsId]);
    }

    /// <summary>Backpropagates a batch run forward together; parameter gradients of all its samples add up in the batch's shared arrays.</summary>
    public void Backward(Workspace[] batch, int count)
    {
        for (int i = Steps.Length - 1; i >= 0; i--) Steps[i].Backward(batch, count);
    }

    /// <summary>dLoss/dInput of the last Backward.</summary>
    public ReadOnlySpan<float> InputGradient(Workspace ws) => ws.Gradients[InputId];

    /// <summary>
    /// Whether Backward computes dLoss/dInput (the trainer turns it off: the first layer then skips its largest
    /// product, whose result nothing reads).
    /// </summary>
    public bool ComputesInputGradient { get; set; } = true;

    /// <summary>
    /// Whether Dense layers leave their weight gradient to <see cref="DenseStep.WeightGradient"/> (the trainer
    /// computes it once per mini-batch over all shards).
    /// </summary>
    internal bool DefersDenseWeightGradients { get; set; }

    public Workspace CreateWorkspace() => CreateBatch(1)[0];

    /// <summary>Workspaces for <paramref name="size"/> samples run together, sharing one set of parameter gradients and batch buffers.</summary>
    public Workspace[] CreateBatch(int size)
    {
        var first = new Workspace(this, null);
        var batch = new Workspace[size];
        batch[0] = first;
        for (int i = 1; i < size; i++) batch[i] = new Workspace(this, first.ParameterGradients);
        return batch;
    }
}

/// <summary>
/// One sample's buffers: activations and their gradients per tensor, and the parameter gradients (shared by the
/// workspaces of a batch, which backward adds into in sample order).
/// </summary>
public sealed class Workspace
{
    internal readonly Network Net;
    internal readonly float[][] Values, Gradients;
    internal readonly Dictionary<Parameter, float[]> ParameterGradients;
    internal readonly Dictionary<object, float[]> Scratch = new(ReferenceEqualityComparer.Instance);
    internal readonly Dictionary<object, int[]> Indices = new(ReferenceEqualityComparer.Instance);
    /// <summary>A batch of this workspace alone, for the one-sample calls.</summary>
    internal readonly Workspace[] Alone;

    internal Workspace(Network net, Dictionary<Parameter, float[]>? parameterGradients)
    {
        Net = net;
        Values = net.Sizes.Select(s => new float[s]).ToArray();
        Gradients = net.Sizes.Select(s => new float[s]).ToArray();
        ParameterGradients = parameterGradients ?? net.AllParameters.ToDictionary(p => p, p => new float[p.Value.Length]);
        Alone = [this];
    }

    public float[] GradientOf(Parameter p) => ParameterGradients[p];

    /// <summary>A buffer of the owner's, allocated on first use (later calls get the same one, whatever the length).</summary>
    internal float[] Buffer(object owner, int length) =>
        Scratch.TryGetValue(owner, out var b) ? b : Scratch[owner] = new float[length];

    internal int[] IndexBuffer(object owner, int length) =>
        Indices.TryGetValue(owner, out var b) ? b : Indices[owner] = new int[length];

    public void ClearParameterGradients()
    {
        foreach (var g in ParameterGradients.Values) Array.Clear(g);
    }
}

internal abstract class Step
{
    public abstract void Forward(Workspace ws);
    public abstract void Backward(Workspace ws);

    /// <summary>The first <paramref name="count"/> samples of a batch; by default one after the other.</summary>
    public virtual void Forward(Workspace[] batch, int count)
    {
        for (int i = 0; i < count; i++) Forward(batch[i]);
    }

    public virtual void Backward(Workspace[] batch, int count)
    {
        for (int i = 0; i < count; i++) Backward(batch[i]);
    }
}

internal sealed class CopyStep(int input, int output) : Step
{
    public override void Forward(Workspace ws) => ws.Values[input].CopyTo(ws.Values[output], 0);
    public override void Backward(Workspace ws) => TensorPrimitives.Add(ws.Gradients[input], ws.Gradients[output], ws.Gradients[input]);
}
