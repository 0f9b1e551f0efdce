using Scalpel.Onnx.Proto;

namespace Scalpel.Onnx.Layers;

/// <summary>Layers with weights and windows: Gemm, MatMul, Conv, pools, BatchNormalization.</summary>
public sealed partial class GraphAnalyzer
{
    private Layer Gemm(Node node, string output)
    {
        var a = RuntimeInput(node);
        var aShape = ShapeOf(a);
        if (aShape.Length != 2) throw Error(node, $"input A has shape {Shape.Format(aShape)}; Gemm needs 2-D");
        var b = RequireConst(node, 1, "weight B");
        if (b.Dims.Length != 2) throw Error(node, "weight B must be 2-D");
        bool transA = node.Int("transA", 0) != 0, transB = node.Int("transB", 0) != 0;
        float alpha = node.Float("alpha", 1f), beta = node.Float("beta", 1f);
        int m = transA ? aShape[1] : aShape[0], k = transA ? aShape[0] : aShape[1];
        int kb = transB ? b.Dims[1] : b.Dims[0], n = transB ? b.Dims[0] : b.Dims[1];
        if (k != kb) throw Error(node, $"A {Shape.Format(aShape)} and B {Shape.Format(b.Dims)} do not multiply");
        var w = new float[n * k];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < k; j++)
                w[i * k + j] = alpha * (transB ? b.Data[i * k + j] : b.Data[j * n + i]);
        float[]? bias = null, biasFull = null;
        if (node.Input(2) is not null)
        {
            var c = RequireConst(node, 2, "bias C");
            var cShape = c.Dims;
            if (Shape.Broadcast(cShape, [m, n]) is not { } bs || bs[0] != m || bs[1] != n)
                throw Error(node, $"bias C {Shape.Format(cShape)} does not broadcast to [{m},{n}]");
            var strides = Shape.BroadcastStrides(cShape, [m, n]);
            if (strides[0] == 0)
            {
                bias = new float[n];
                for (int j = 0; j < n; j++) bias[j] = beta * c.Data[j * strides[1]];
            }
            else
            {
                biasFull = new float[m * n];
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < n; j++) biasFull[i * n + j] = beta * c.Data[i * strides[0] + j * strides[1]];
            }
        }
        return new DenseLayer(node, a, output, [m, n])
        {
            InputRows = m, K = k, N = n, Weight = w, Bias = bias, BiasFull = biasFull, TransposeInput = transA,
        };
    }

    private Layer MatMul(Node node, string output)
    {
        var a = RuntimeInput(node);
        var aShape = ShapeOf(a);
        var b = RequireConst(node, 1, "weight B");
        if (b.Dims.Length != 2 || aShape.Length < 2)
            throw Error(node, $"multiplies {Shape.Format(aShape)} by {Shape.Format(b.Dims)}; Scalpel.Build supports an input of rank 2 or more times a constant 2-D weight");
        int k = aShape[^1], n = b.Dims[1];
        if (b.Dims[0] != k) throw Error(node, $"A {Shape.Format(aShape)} and B {Shape.Format(b.Dims)} do not multiply");
        var w = new float[n * k];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < k; j++) w[i * k + j] = b.Data[j * n + i];
        var outShape = aShape[..^1].Append(n).ToArray();
        return new DenseLayer(node, a, output, outShape) { InputRows = Shape.Size(aShape) / k, K = k, N = n, Weight = w };
    }

    /// <summary>Spatial dims of a rank-3 or rank-4 NC... tensor as (H, W); rank 3 is 1-D (H = 1).</summary>
    private (int H, int W) Spatial(Node node, int[] shape)
    {
        return shape.Length switch
        {
            3 => (1, shape[2]),
            4 => (shape[2], shape[3]),
            _ => throw Error(node, $"has input shape {Shape.Format(shape)}; Scalpel.Build supports 1-D and 2-D spatial data"),
        };
    }

    /// <summary>Per-axis (begin pad, end pad, output size) for conv and pool, honouring auto_pad and ceil_mode.</summary>
    private (int Begin, int End, int Out) Window(Node node, int axis, int rank, int input, int kernel, int stride, int dilation, long[]? pads, bool ceil)
    {
        var autoPad = node.String("auto_pad") ?? "NOTSET";
        int span = (kernel - 1) * dilation + 1;
        switch (autoPad)
        {
            case "SAME_UPPER":
            case "SAME_LOWER":
            {
                int outSize = (input + stride - 1) / stride;
                int total = Math.Max(0, (outSize - 1) * stride + span - input);
                int begin = autoPad == "SAME_UPPER" ? total / 2 : total - total / 2;
                return (begin, total - begin, outSize);
            }
            case "VALID":
                if (input < span) throw Error(node, "has a window larger than its input");
                return (0, 0, (input - span) / stride + 1);
            case "NOTSET" or "":
            {
                int begin = pads is null ? 0 : checked((int)pads[axis]);
                int end = pads is null ? 0 : checked((int)pads[axis + rank]);
                int extent = input + begin + end - span;
                if (extent < 0) throw Error(node, "has a window larger than its padded input");
                int outSize = ceil ? (extent + stride - 1) / stride + 1 : extent / stride + 1;
                // A last window that starts inside the end padding is dropped (as ONNX Runtime does).
                if (ceil && (outSize - 1) * stride >= input + begin) outSize--;
                return (begin, end, outSize);
            }
            default:
                throw Error(node, $"has auto_pad '{autoPad}'");
        }
    }

    private Layer Conv(Node node, string output)
    {
        var x = RuntimeInput(node);
        var xShape = ShapeOf(x);
        var (h, w) = Spatial(node, xShape);
        var weight = RequireConst(node, 1, "weight W");
        int rank = xShape.Length - 2;
        if (weight.Dims.Length != xShape.Length) throw Error(node, $"weight {Shape.Format(weight.Dims)} does not match input {Shape.Format(xShape)}");
        int group = checked((int)node.Int("group", 1));
        int c = xShape[1], m = weight.Dims[0];
        if (group <= 0 || c % group != 0 || m % group != 0 || weight.Dims[1] != c / group)
            throw Error(node, $"has group {group} with {c} input channels and weight {Shape.Format(weight.Dims)}");
        int kh = rank == 2 ? weight.Dims[2] : 1, kw = weight.Dims[^1];
        if (weight.Dims.Skip(2).Any(d => d < 1)) throw Error(node, $"has weight {Shape.Format(weight.Dims)} with an empty kernel");
        if (node.Ints("kernel_shape") is { } ks && !ks.SequenceEqual(weight.Dims.Skip(2).Select(d => (long)d)))
            throw Error(node, $"has kernel_shape [{string.Join(",", ks)}] but weight {Shape.Format(weight.Dims)}");
        var strides = AxisInts(node, "strides", rank, 1, 1);
        var dilations = AxisInts(node, "dilations", rank, 1, 1);
        var pads = node.Has("pads") ? AxisInts(node, "pads", rank, 0, 0, 2 * rank) : null;
        int sh = rank == 2 ? (int)strides[0] : 1, sw = (int)strides[^1];
        int dh = rank == 2 ? (int)dilations[0] : 1, dw = (int)dilations[^1];
        var (pt, pb, oh) = rank == 2 ? Window(node, 0, rank, h, kh, sh, dh, pads, false) : (0, 0, 1);
        var (pl, pr, ow) = Window(node, rank - 1, rank, w, kw, sw, dw, pads, false);
        float[]? bias = null;
        if (node.Input(2) is not null)
        {
            bias = RequireConst(node, 2, "bias B").Data;
            if (bias.Length != m) throw Error(node, $"has {bias.Length} biases for {m} output channels");
        }
        int[] outShape = rank == 2 ? [xShape[0], m, oh, ow] : [xShape[0], m, ow];
        return new ConvLayer(node, x, output, outShape)
        {
            Batch = xShape[0], C = c, M = m, Group = group, Window = new Window2D(h, w, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr, oh, ow),
            Weight = weight.Data, Bias = bias,
        };
    }

    private Layer Pool(Node node, string output)
    {
        var x = RuntimeInput(node);
        var xShape = ShapeOf(x);
        var (h, w) = Spatial(node, xShape);
        int rank = xShape.Length - 2;
        if (!node.Has("kernel_shape")) throw Error(node, "has no kernel_shape");
        var kernel = AxisInts(node, "kernel_shape", rank, 1, 1);
        var strides = AxisInts(node, "strides", rank, 1, 1);
        var dilations = AxisInts(node, "dilations", rank, 1, 1);
        var pads = node.Has("pads") ? AxisInts(node, "pads", rank, 0, 0, 2 * rank) : null;
        bool ceil = node.Int("ceil_mode", 0) != 0;
        int kh = rank == 2 ? (int)kernel[0] : 1, kw = (int)kernel[^1];
        int sh = rank == 2 ? (int)strides[0] : 1, sw = (int)strides[^1];
        int dh = rank == 2 ? (int)dilations[0] : 1, dw = (int)dilations[^1];
        var (pt, pb, oh) = rank == 2 ? Window(node, 0, rank, h, kh, sh, dh, pads, ceil) : (0, 0, 1);
        var (pl, pr, ow) = Window(node, rank - 1, rank, w, kw, sw, dw, pads, ceil);
        int[] outShape = rank == 2 ? [xShape[0], xShape[1], oh, ow] : [xShape[0], xShape[1], ow];
        return new PoolLayer(node, x, output, outShape)
        {
            IsMax = node.OpType == "MaxPool", Planes = xShape[0] * xShape[1], Window = new Window2D(h, w, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr, oh, ow),
            CountIncludePad = node.Int("count_include_pad", 0) != 0,
        };
    }

    private Layer GlobalPool(Node node, string output)
    {
        var x = RuntimeInput(node);
        var s = ShapeOf(x);
        if (s.Length < 3) throw Error(node, $"needs an input with spatial dimensions, got {Shape.Format(s)}");
        var outShape = s.Select((d, i) => i < 2 ? d : 1).ToArray();
        return new GlobalPoolLayer(node, x, output, outShape)
        {
            IsMax = node.OpType == "GlobalMaxPool", Planes = s[0] * s[1], Spatial = Shape.Size(s, 2, s.Length),
        };
    }

    private Layer BatchNorm(Node node, string output)
    {
        if (node.Int("training_mode", 0) != 0) throw Error(node, "is in training mode");
        var x = RuntimeInput(node);
        var s = ShapeOf(x);
        if (s.Length < 2) throw Error(node, $"needs an input of rank 2 or more, got {Shape.Format(s)}");
        var scale = RequireConst(node, 1, "scale").Data;
        var bias = RequireConst(node, 2, "bias").Data;
        var mean = RequireConst(node, 3, "mean").Data;
        var variance = RequireConst(node, 4, "variance").Data;
        int c = s[1];
        if (new[] { scale, bias, mean, variance }.Any(a => a.Length != c)) throw Error(node, $"needs {c} values per parameter");
        float eps = node.Float("epsilon", 1e-5f);
        var a = new float[c];
        var b = new float[c];
        for (int i = 0; i < c; i++)
        {
            a[i] = scale[i] / MathF.Sqrt(variance[i] + eps);
            b[i] = bias[i] - mean[i] * a[i];
        }
        return new ScaleShiftLayer(node, x, output, s)
        {
            Batch = s[0], C = c, Spatial = Shape.Size(s, 2, s.Length), Scale = a, Shift = b,
        };
    }
}
