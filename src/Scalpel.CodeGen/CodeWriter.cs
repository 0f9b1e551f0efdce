using System.Globalization;
using System.Text;

namespace Scalpel.CodeGen;

/// <summary>An indenting text writer with '\n' line endings, so output is byte-identical on every OS.</summary>
internal sealed class CodeWriter
{
    private readonly StringBuilder _sb = new();
    private int _indent;

    public CodeWriter Line(string text = "")
    {
        if (text.Length > 0) _sb.Append(' ', 4 * _indent).Append(text);
        _sb.Append('\n');
        return this;
    }

    public CodeWriter Open(string text)
    {
        Line(text);
        Line("{");
        _indent++;
        return this;
    }

    /// <summary>Opens a bare block.</summary>
    public CodeWriter OpenBlock()
    {
        Line("{");
        _indent++;
        return this;
    }

    public CodeWriter Close(string suffix = "")
    {
        _indent--;
        return Line("}" + suffix);
    }

    public override string ToString() => _sb.ToString();

    public static string F(float value) => value switch
    {
        float.PositiveInfinity => "float.PositiveInfinity",
        float.NegativeInfinity => "float.NegativeInfinity",
        _ when float.IsNaN(value) => "float.NaN",
        _ => value.ToString("R", CultureInfo.InvariantCulture) + "f",
    };

    public static string I(long value) => value.ToString(CultureInfo.InvariantCulture);
}
