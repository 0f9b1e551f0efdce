namespace Scalpel.Onnx;

/// <summary>A dense float32 tensor, row-major.</summary>
public sealed class Tensor
{
    public string Name { get; }
    public int[] Dims { get; }
    public float[] Data { get; }

    public Tensor(string name, int[] dims, float[] data)
    {
        if (Shape.Size(dims) != data.Length)
            throw new ArgumentException($"tensor {name}: {data.Length} values for shape {Shape.Format(dims)}");
        Name = name;
        Dims = dims;
        Data = data;
    }
}

/// <summary>Small helpers over shapes (int[] dims).</summary>
public static class Shape
{
    public static int Size(ReadOnlySpan<int> dims)
    {
        long size = 1;
        foreach (var d in dims) size *= d;
        return checked((int)size);
    }

    public static int Size(ReadOnlySpan<int> dims, int from, int to)
    {
        long size = 1;
        for (int i = from; i < to; i++) size *= dims[i];
        return checked((int)size);
    }

    public static string Format(ReadOnlySpan<int> dims, bool symbolicBatch = false)
    {
        var parts = new string[dims.Length];
        for (int i = 0; i < dims.Length; i++)
            parts[i] = i == 0 && symbolicBatch ? "N" : dims[i].ToString(System.Globalization.CultureInfo.InvariantCulture);
        return "[" + string.Join(",", parts) + "]";
    }

    /// <summary>Row-major strides of a shape.</summary>
    public static int[] Strides(int[] dims)
    {
        var strides = new int[dims.Length];
        for (int d = dims.Length - 1, s = 1; d >= 0; s *= dims[d], d--) strides[d] = s;
        return strides;
    }

    /// <summary>Numpy-style (multidirectional) broadcasting; null when the shapes are incompatible.</summary>
    public static int[]? Broadcast(int[] a, int[] b)
    {
        int rank = Math.Max(a.Length, b.Length);
        var result = new int[rank];
        for (int i = 0; i < rank; i++)
        {
            int da = i - (rank - a.Length) >= 0 ? a[i - (rank - a.Length)] : 1;
            int db = i - (rank - b.Length) >= 0 ? b[i - (rank - b.Length)] : 1;
            if (da != db && da != 1 && db != 1) return null;
            result[i] = da == 1 ? db : da;
        }
        return result;
    }

    /// <summary>Row-major strides of <paramref name="dims"/> broadcast to <paramref name="target"/>: 0 along broadcast axes.</summary>
    public static int[] BroadcastStrides(int[] dims, int[] target)
    {
        var strides = new int[target.Length];
        int stride = 1;
        for (int i = target.Length - 1, j = dims.Length - 1; i >= 0; i--, j--)
        {
            int d = j >= 0 ? dims[j] : 1;
            strides[i] = d == 1 ? 0 : stride;
            stride *= d;
        }
        return strides;
    }
}
