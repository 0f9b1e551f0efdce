using Scalpel.Onnx;
using Scalpel.Onnx.Layers;
using static Scalpel.CodeGen.CodeWriter;

namespace Scalpel.CodeGen;

/// <summary>Buffers of the generated class: layer outputs shared over their lifetimes, kernel scratch, per-layer copies.</summary>
public sealed partial class CSharpEmitter
{
    private string Buffer(string name, int size, string comment)
    {
        if (size < 0) throw new OverflowException($"buffer {name} of {size} floats");
        _buffers.Add((name, size, comment));
        return name;
    }

    /// <summary>
    /// Scratch a kernel overwrites whole on every call (wide rows, pixel-major outputs, patches, a transposed
    /// input), shared by all layers: slots 0 to 3 for a kernel that needs several at once.
    /// </summary>
    private string Scratch(int slot, int size)
    {
        if (size < 0) throw new OverflowException($"scratch of {size} floats");
        _scratch[slot] = Math.Max(_scratch[slot], size);
        return $"_scratch{slot}";
    }

    /// <summary>
    /// A buffer for the output of layer <paramref name="index"/>, <paramref name="size"/> floats per sample, which
    /// holds <paramref name="tensors"/> (the layer's and those of the layers folded into it): a free one when some
    /// tensor before has died (the smallest that fits, else the largest, grown), so tensors whose lifetimes do not
    /// overlap share memory, as ONNX Runtime's planner does. Before the split it holds one sample, unless the tail
    /// reads it: such a tensor, carried out of the per-sample loop, holds every sample's part and gets a new buffer,
    /// as a free one was used by an earlier layer of the loop, which writes it again for the next sample.
    /// </summary>
    private string ActivationBuffer(int size, int index, IReadOnlyCollection<string> tensors, string? inPlace = null)
    {
        bool carried = index < _split && tensors.Any(_readAfterSplit.Contains);
        bool wholeChunk = index >= _split || carried;
        int need = checked(size * (wholeChunk ? _chunk : 1));
        if (inPlace is not null && InPlace(inPlace, size, index, wholeChunk, need) is { } same) return same;
        int pick = -1;
        if (!carried)
            foreach (var i in _free)
                if (pick < 0 || Better(i, pick)) pick = i;
        bool Better(int i, int than) => _activations[i].Capacity >= need
            ? _activations[than].Capacity < need || _activations[i].Capacity < _activations[than].Capacity
            : _activations[than].Capacity < need && _activations[i].Capacity > _activations[than].Capacity;
        if (pick < 0)
        {
            pick = _activations.Count;
            _activations.Add(($"_a{_activations.Count}", need));
        }
        else
        {
            _free.Remove(pick);
            _activations[pick] = (_activations[pick].Name, Math.Max(need, _activations[pick].Capacity));
        }
        _sampleSize[_activations[pick].Name] = size;
        if (wholeChunk) _perSample.Remove(_activations[pick].Name);
        else _perSample.Add(_activations[pick].Name);
        return _activations[pick].Name;
    }

    /// <summary>
    /// The buffer of <paramref name="input"/> when an element-wise layer may write its output over it: the input is
    /// of the output's size and this layer reads it, and every tensor the buffer holds, for the last time. Each output
    /// element is computed from the input element at its own index, so overwriting is safe, and the output lands in
    /// lines the input just brought into cache instead of a buffer that must be fetched before it is written.
    /// </summary>
    private string? InPlace(string input, int size, int index, bool wholeChunk, int need)
    {
        if (!_storage.TryGetValue(input, out var storage) || storage is "input" or "output" || _sampleSize[storage] != size) return null;
        if (_storage.Any(t => t.Value == storage && _lastUse.GetValueOrDefault(t.Key, -1) > index)) return null;
        int i = _activations.FindIndex(a => a.Name == storage);
        if (i < 0 || _activations[i].Capacity < need || _perSample.Contains(storage) == wholeChunk) return null;
        return storage;
    }

    /// <summary>Frees the activation buffers whose every tensor has been read for the last time by layer <paramref name="index"/>.</summary>
    private void ReleaseDead(int index)
    {
        for (int i = 0; i < _activations.Count; i++)
        {
            if (_free.Contains(i)) continue;
            var name = _activations[i].Name;
            if (_storage.All(t => t.Value != name || _lastUse.GetValueOrDefault(t.Key, -1) <= index)) _free.Add(i);
        }
    }

    /// <summary>A storage's samples [0, count) as a span.</summary>
    private string Whole(string storage) => storage is "input" or "output"
        ? $"{storage}[..(count * {I(_sampleSize[storage])})]"
        : $"{storage}.AsSpan(0, count * {I(_sampleSize[storage])})";

    /// <summary>Sample s of a storage as a span (a buffer that holds one sample's tensor: all of it).</summary>
    private string SampleOf(string storage)
    {
        var size = I(_sampleSize[storage]);
        return storage is "input" or "output" ? $"{storage}.Slice(s * {size}, {size})"
            : _perSample.Contains(storage) ? $"{storage}.AsSpan(0, {size})" : $"{storage}.AsSpan(s * {size}, {size})";
    }
}
