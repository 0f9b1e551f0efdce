namespace Scalpel.Tests;

/// <summary>Where the tests find their real data: the repo's fixtures and Debian's data packages.</summary>
public static class TestData
{
    public static string RepoRoot { get; } = FindRepoRoot();

    public static string Fixtures => Path.Combine(RepoRoot, "tests", "fixtures");

    public static string Fixture(string name) => Path.Combine(Fixtures, name);

    /// <summary>ONNX's operator conformance cases (Debian package libonnx-testdata).</summary>
    public const string OnnxNodeTests = "/usr/share/libonnx-testdata/data/node";

    /// <summary>Fashion-MNIST IDX files (Debian package dataset-fashion-mnist).</summary>
    public const string FashionMnist = "/usr/share/datasets/fashion-mnist";

    public static void RequireDebianPackage(string path, string package)
    {
        if (!Directory.Exists(path))
            throw new InvalidOperationException($"{path} is missing: install the Debian package '{package}' (apt-get install {package}); the README's test command does this.");
    }

    private static string FindRepoRoot()
    {
        var dir = AppContext.BaseDirectory;
        while (dir is not null && !File.Exists(Path.Combine(dir, "Scalpel.Build.sln"))) dir = Path.GetDirectoryName(dir);
        return dir ?? throw new InvalidOperationException("cannot find the repository root (Scalpel.Build.sln) above " + AppContext.BaseDirectory);
    }

    public static string TempDir()
    {
        var dir = Path.Combine(Path.GetTempPath(), "scalpel-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }
}
