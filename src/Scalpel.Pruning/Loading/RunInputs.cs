using Scalpel.Onnx;
using Scalpel.Onnx.Layers;
using Scalpel.Pruning.Data;
using Scalpel.Pruning.Methods;

namespace Scalpel.Pruning.Loading;

/// <summary>What a run reads: the model (ONNX and analysed) and its data sets, checked against each other.</summary>
internal sealed record RunInputs(OnnxModel Original, ModelGraph OriginalModel, Dataset? Calibration, Dataset? Validation, Dataset? Training)
{
    public static RunInputs Load(PruneOptions o)
    {
        // BatchNorms folded into the initializers of the layers before them (same function): the model ONNX Runtime
        // scores and the run exports then holds the weights the analysed layers hold, which pruning rewrites.
        var original = BatchNormFolding.Apply(OnnxModel.Load(o.ModelPath, o.MaxModelBytes));
        var originalModel = GraphAnalyzer.Analyze(original);
        o.ValidateLayerNames(originalModel.Layers.OfType<WeightedLayer>().Select(l => l.Name).ToList());
        if (originalModel.BatchMode != BatchMode.PerSample)
            throw new UnsupportedModelException($"{o.ModelPath}: pruning needs a model whose first input dimension is the batch (symbolic or 1).");
        var sampleShape = originalModel.InputShape[1..];

        Dataset? calibration = o.CalibrationData is null ? null : Dataset.Load(o.CalibrationData, null, sampleShape, maxSamples: o.MaxCalibrationSamples, inputsOption: "--calibration");
        Dataset? validation = o.ValidationData is null ? null : Dataset.Load(o.ValidationData, o.ValidationLabels, sampleShape, originalModel.OutputSize, inputsOption: "--validation", labelsOption: "--labels");
        Dataset? training = o.TrainingData is null ? null
            : Dataset.Load(o.TrainingData, o.TrainingLabels!, sampleShape, originalModel.OutputSize, o.Retraining.MaxSamples, "--train", "--train-labels");
        if (validation is null && calibration is not null && calibration.Count >= 8)
        {
            // Hold out a quarter of the calibration set to check agreement on inputs the refit has not seen.
            int held = calibration.Count / 4;
            validation = new Dataset
            {
                Inputs = calibration.Inputs.AsSpan((calibration.Count - held) * calibration.SampleSize).ToArray(), Count = held,
                SampleSize = calibration.SampleSize, Source = calibration.Source + " (held-out quarter)",
            };
            calibration = calibration.Take(calibration.Count - held);
        }
        if (training is not null && validation is null)
            throw new ScalpelException(ErrorCode.Option, $"{o.TrainingData}: retraining keeps only steps that stay within the accuracy budget, so it needs validation data (--validation), or at least 8 calibration samples to hold a quarter out.");
        return new RunInputs(original, originalModel, calibration, validation, training);
    }
}
