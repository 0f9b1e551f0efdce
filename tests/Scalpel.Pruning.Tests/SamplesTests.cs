using Scalpel.Pruning.Profiling;
using Xunit;

namespace Scalpel.Tests;

/// <summary>The one median every timer uses.</summary>
public sealed class SamplesTests
{
    [Theory]
    [InlineData(new[] { 3.0 }, 3.0)]
    [InlineData(new[] { 5.0, 1.0, 3.0 }, 3.0)]
    [InlineData(new[] { 4.0, 1.0 }, 2.5)] // even count: the mean of the two middle values, not the upper one
    [InlineData(new[] { 10.0, 1.0, 2.0, 4.0 }, 3.0)]
    [InlineData(new[] { 2.0, 2.0, 7.0, 7.0 }, 4.5)]
    public void MedianIsTheMiddleValueOrTheMeanOfTheTwoMiddleOnes(double[] values, double median)
    {
        Assert.Equal(median, Samples.Median(values));
        Assert.Equal(median, Samples.Median(values.Reverse().ToList()));
    }

    [Fact]
    public void MedianOfNoSamplesIsRefused() => Assert.Throws<ArgumentException>(() => Samples.Median([]));
}
