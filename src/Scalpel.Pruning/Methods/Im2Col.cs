using Scalpel.Onnx.Layers;

namespace Scalpel.Pruning.Methods;

public static class Im2Col
{
    /// <summary>im2col patch rows ([rows x C*KH*KW]) of a conv's input at evenly spaced output positions of every sample.</summary>
    public static float[] Patches(float[] activation, ConvLayer c, int positionsPerSample)
    {
        int plane = c.H * c.W, sampleSize = c.C * plane, positions = c.OH * c.OW;
        int samples = activation.Length / sampleSize;
        int step = Math.Max(1, positions / positionsPerSample);
        int taken = (positions + step - 1) / step;
        int k = c.C * c.KH * c.KW;
        var patches = new float[samples * taken * k];
        int row = 0;
        for (int n = 0; n < samples; n++)
            for (int p = 0; p < positions; p += step, row++)
            {
                int oh = p / c.OW, ow = p % c.OW;
                for (int ch = 0; ch < c.C; ch++)
                    for (int i = 0; i < c.KH; i++)
                    {
                        int ih = oh * c.StrideH - c.PadTop + i * c.DilationH;
                        for (int j = 0; j < c.KW; j++)
                        {
                            int iw = ow * c.StrideW - c.PadLeft + j * c.DilationW;
                            if ((uint)ih < (uint)c.H && (uint)iw < (uint)c.W)
                                patches[(long)row * k + (ch * c.KH + i) * c.KW + j] = activation[n * sampleSize + ch * plane + ih * c.W + iw];
                        }
                    }
            }
        return patches;
    }
}
