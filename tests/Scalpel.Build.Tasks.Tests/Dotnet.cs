using System.Diagnostics;
using System.Text;

namespace Scalpel.Tests;

/// <summary>Runs the dotnet CLI as a user would, isolated from the test host's own MSBuild environment.</summary>
public static class Dotnet
{
    public sealed record Result(int ExitCode, string Output)
    {
        public Result Succeeded(string what)
        {
            Assert.True(ExitCode == 0, $"{what} failed with exit code {ExitCode}:\n{Output}");
            return this;
        }
    }

    public static Result Run(string workingDirectory, IReadOnlyDictionary<string, string>? environment, params string[] args)
    {
        using var process = Start(workingDirectory, environment, out var output, args);
        if (!process.WaitForExit(TimeSpan.FromMinutes(10)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"dotnet {string.Join(" ", args)} ran past 10 minutes:\n{output}");
        }
        process.WaitForExit();
        lock (output) return new Result(process.ExitCode, output.ToString());
    }

    /// <summary>Starts dotnet with stdout and stderr collected, in order, into <paramref name="output"/> (lock it to read).</summary>
    public static Process Start(string workingDirectory, IReadOnlyDictionary<string, string>? environment, out StringBuilder output, params string[] args) =>
        Start("dotnet", [], workingDirectory, environment, out output, args);

    /// <summary>
    /// Starts dotnet so that Ctrl+C (SIGINT) reaches it even when this process runs with SIGINT ignored, as shells
    /// start background jobs (a CI runner may): ignored signals survive exec, so GNU env resets it to the default.
    /// </summary>
    public static Process StartInterruptible(string workingDirectory, IReadOnlyDictionary<string, string>? environment, out StringBuilder output, params string[] args) =>
        OperatingSystem.IsLinux() ? Start("env", ["--default-signal=INT", "dotnet"], workingDirectory, environment, out output, args)
        : Start(workingDirectory, environment, out output, args);

    private static Process Start(string fileName, string[] prefix, string workingDirectory, IReadOnlyDictionary<string, string>? environment, out StringBuilder output, string[] args)
    {
        var info = new ProcessStartInfo(fileName)
        {
            WorkingDirectory = workingDirectory, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        foreach (var a in prefix.Concat(args)) info.ArgumentList.Add(a);
        // The test host runs under `dotnet test`: its MSBuild variables would leak into the child build.
        foreach (var name in info.Environment.Keys.Where(k => k.StartsWith("MSBUILD", StringComparison.OrdinalIgnoreCase) || k == "DOTNET_HOST_PATH").ToList())
            info.Environment.Remove(name);
        info.Environment["DOTNET_CLI_UI_LANGUAGE"] = "en";
        info.Environment["DOTNET_NOLOGO"] = "1";
        info.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        info.Environment["MSBUILDDISABLENODEREUSE"] = "1";
        info.Environment["MSBUILDTERMINALLOGGER"] = "off";
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) info.Environment[k] = v;

        var sb = output = new StringBuilder();
        var process = new Process { StartInfo = info };
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (sb) sb.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (sb) sb.AppendLine(e.Data); };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }
}
