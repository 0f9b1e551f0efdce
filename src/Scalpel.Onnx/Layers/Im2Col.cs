namespace Scalpel.Onnx.Layers;

/// <summary>A conv's input rearranged into the rows its weight multiplies, for statistics and refits.</summary>
public static class Im2Col
{
    /// <summary>im2col patch rows ([rows x C*KH*KW]) of a conv's input at evenly spaced output positions of every sample.</summary>
    public static float[] Patches(float[] activation, ConvLayer c, int positionsPerSample)
    {
        int plane = c.Window.H * c.Window.W, sampleSize = c.C * plane, positions = c.Window.OH * c.Window.OW;
        int samples = activation.Length / sampleSize;
        int step = Math.Max(1, positions / positionsPerSample);
        int taken = (positions + step - 1) / step;
        int k = c.C * c.Window.KH * c.Window.KW;
        var patches = new float[samples * taken * k];
        int row = 0;
        for (int n = 0; n < samples; n++)
            for (int p = 0; p < positions; p += step, row++)
            {
                int oh = p / c.Window.OW, ow = p % c.Window.OW;
                for (int ch = 0; ch < c.C; ch++)
                    for (int i = 0; i < c.Window.KH; i++)
                    {
                        int ih = oh * c.Window.StrideH - c.Window.PadTop + i * c.Window.DilationH;
                        for (int j = 0; j < c.Window.KW; j++)
                        {
                            int iw = ow * c.Window.StrideW - c.Window.PadLeft + j * c.Window.DilationW;
                            if ((uint)ih < (uint)c.Window.H && (uint)iw < (uint)c.Window.W)
                                patches[(long)row * k + (ch * c.Window.KH + i) * c.Window.KW + j] = activation[n * sampleSize + ch * plane + ih * c.Window.W + iw];
                        }
                    }
            }
        return patches;
    }
}
