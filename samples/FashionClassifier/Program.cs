using System.Diagnostics;
using System.IO.Compression;
using FashionClassifier.Models;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

// Classifies Fashion-MNIST's 10,000 test images three ways: the code Scalpel.Build generated (pruned), and
// ONNX Runtime on the original and on the pruned ONNX model. Prints accuracy and the median time of one
// inference (batch 1, one thread) for each.
string folder = args.Length > 0 ? args[0] : "/usr/share/datasets/fashion-mnist";
var (images, count) = ReadImages(Path.Combine(folder, "t10k-images-idx3-ubyte.gz"));
var labels = ReadLabels(Path.Combine(folder, "t10k-labels-idx1-ubyte.gz"));
Console.WriteLine($"Fashion-MNIST test set: {count} images from {folder}");

var generated = new FashionMlp();
var logits = new float[FashionMlp.OutputSize];
Report("generated C# (pruned)", i => generated.Run(images.AsSpan(i * FashionMlp.InputSize, FashionMlp.InputSize), logits));

foreach (var (name, file) in new[] { ("ONNX Runtime (original)", "mlp.onnx"), ("ONNX Runtime (pruned)", "FashionMlp.onnx") })
{
    using var options = new SessionOptions { IntraOpNumThreads = 1 };
    using var session = new InferenceSession(Path.Combine(AppContext.BaseDirectory, file), options);
    string input = session.InputNames[0];
    var shape = session.InputMetadata[input].Dimensions.Select(d => d < 0 ? 1 : d).ToArray(); // batch 1
    var tensor = new DenseTensor<float>(shape);
    Report(name, i =>
    {
        images.AsSpan(i * FashionMlp.InputSize, FashionMlp.InputSize).CopyTo(tensor.Buffer.Span);
        using var results = session.Run([NamedOnnxValue.CreateFromTensor(input, tensor)]);
        results[0].AsEnumerable<float>().ToArray().CopyTo(logits, 0);
    });
}

void Report(string name, Action<int> classify)
{
    for (int i = 0; i < 200; i++) classify(i); // warm-up: let the JIT tier up
    var times = new double[count];
    int correct = 0;
    for (int i = 0; i < count; i++)
    {
        long start = Stopwatch.GetTimestamp();
        classify(i);
        times[i] = Stopwatch.GetElapsedTime(start).TotalMicroseconds;
        if (Array.IndexOf(logits, logits.Max()) == labels[i]) correct++;
    }
    Array.Sort(times);
    Console.WriteLine($"  {name,-26} accuracy {100.0 * correct / count,6:F2} %   median {times[count / 2],7:F1} µs per image");
}

static (float[] Images, int Count) ReadImages(string path)
{
    var bytes = ReadGzip(path);
    int count = BigEndian(bytes, 4), pixels = BigEndian(bytes, 8) * BigEndian(bytes, 12);
    return (bytes.AsSpan(16, count * pixels).ToArray().Select(b => b / 255f).ToArray(), count);
}

static byte[] ReadLabels(string path) => ReadGzip(path)[8..];

static byte[] ReadGzip(string path)
{
    if (!File.Exists(path)) throw new FileNotFoundException($"{path} not found: install Debian's dataset-fashion-mnist, or pass the folder holding the IDX files.");
    using var gzip = new GZipStream(File.OpenRead(path), CompressionMode.Decompress);
    using var memory = new MemoryStream();
    gzip.CopyTo(memory);
    return memory.ToArray();
}

static int BigEndian(byte[] b, int at) => b[at] << 24 | b[at + 1] << 16 | b[at + 2] << 8 | b[at + 3];
