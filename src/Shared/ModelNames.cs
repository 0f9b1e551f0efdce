using System;
using System.Linq;

namespace Scalpel;

/// <summary>
/// Default names for generated code, shared by the command line and the MSBuild task (compiled into both,
/// which target different frameworks) so a build and a hand-run prune name things alike.
/// </summary>
internal static class ModelNames
{
    /// <summary>The class name from a model's file name: "my-model_v2.onnx" gives MyModelV2, "3d.onnx" Model3d.</summary>
    public static string ClassNameFrom(string path)
    {
        var stem = System.IO.Path.GetFileNameWithoutExtension(path);
        var parts = stem.Split(['-', '_', '.', ' '], StringSplitOptions.RemoveEmptyEntries);
        var name = new string(string.Concat(parts.Select(p => char.ToUpperInvariant(p[0]) + p.Substring(1))).Where(char.IsLetterOrDigit).ToArray());
        return name.Length == 0 || char.IsDigit(name[0]) ? "Model" + name : name;
    }

    /// <summary>A project's RootNamespace made a valid namespace ("My-App.2" gives My_App._2); Scalpel.Generated when empty.</summary>
    public static string NamespaceFrom(string rootNamespace)
    {
        var parts = rootNamespace.Split(['.'], StringSplitOptions.RemoveEmptyEntries)
            .Select(p => new string(p.Select(c => char.IsLetterOrDigit(c) || c == '_' ? c : '_').ToArray()))
            .Select(p => char.IsDigit(p[0]) ? "_" + p : p).ToList();
        return parts.Count == 0 ? "Scalpel.Generated" : string.Join(".", parts);
    }
}
