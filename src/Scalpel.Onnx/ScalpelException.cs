namespace Scalpel.Onnx;

/// <summary>A problem with a model or its data that the user must fix; the message names the file, node or tensor.</summary>
public class ScalpelException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>The model is valid ONNX but uses something Scalpel.Build does not support.</summary>
public sealed class UnsupportedModelException(string message) : ScalpelException(message);
