namespace Scalpel.Onnx;

/// <summary>Checks on input files made before opening them: opening a FIFO blocks until a writer appears.</summary>
public static class SafeFile
{
    /// <summary>
    /// The file must exist and be a non-empty regular file. Sizes come from stat: FIFOs, sockets and devices report
    /// 0 and are refused without being opened.
    /// </summary>
    public static void RequireRegular(string path, ErrorCode code, string display)
    {
        var info = new FileInfo(path);
        if (Directory.Exists(path) || info.Exists && ((info.Attributes & FileAttributes.Device) != 0 || info.Length == 0))
            throw new ScalpelException(code, $"{display}: empty, or not a regular file.");
    }
}
