using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Scalpel.Pruning.Training;

/// <summary>
/// The two matrix products batched training needs, row-major with leading dimensions, register-blocked with
/// 256-bit vectors: four rows of the result at a time, so each loaded vector serves four (or eight) multiply-adds.
/// Summation order is fixed by the shapes alone: the same inputs give the same bits on any thread.
/// </summary>
internal static class Gemm
{
    private const int V = 8; // floats per Vector256

    /// <summary>C[m×n] += A[m×k] · B[k×n].</summary>
    public static void NN(int m, int n, int k, ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, Span<float> c, int ldc)
    {
        if (m == 0 || n == 0 || k == 0) return;
        ref float A = ref MemoryMarshal.GetReference(a), B = ref MemoryMarshal.GetReference(b), C = ref MemoryMarshal.GetReference(c);
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i + 4 <= m; i += 4)
            {
                int j = 0;
                for (; j + 2 * V <= n; j += 2 * V) Block4x2(k, ref Unsafe.Add(ref A, i * lda), lda, ref Unsafe.Add(ref B, j), ldb, ref Unsafe.Add(ref C, i * ldc + j), ldc);
                for (; j + V <= n; j += V)
                    for (int r = 0; r < 4; r++) Row1(k, ref Unsafe.Add(ref A, (i + r) * lda), ref Unsafe.Add(ref B, j), ldb, ref Unsafe.Add(ref C, (i + r) * ldc + j));
                for (int r = 0; r < 4; r++) Tail(j, n, k, a[((i + r) * lda)..], b, ldb, c[((i + r) * ldc)..]);
            }
            for (; i < m; i++)
            {
                int j = 0;
                for (; j + V <= n; j += V) Row1(k, ref Unsafe.Add(ref A, i * lda), ref Unsafe.Add(ref B, j), ldb, ref Unsafe.Add(ref C, i * ldc + j));
                Tail(j, n, k, a[(i * lda)..], b, ldb, c[(i * ldc)..]);
            }
            return;
        }
        for (; i < m; i++) Tail(0, n, k, a[(i * lda)..], b, ldb, c[(i * ldc)..]);
    }

    private static void Block4x2(int k, ref float a, int lda, ref float b, int ldb, ref float c, int ldc)
    {
        Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default, c30 = default, c31 = default;
        for (int p = 0; p < k; p++)
        {
            ref float bp = ref Unsafe.Add(ref b, p * ldb);
            var b0 = Vector256.LoadUnsafe(ref bp);
            var b1 = Vector256.LoadUnsafe(ref bp, V);
            var a0 = Vector256.Create(Unsafe.Add(ref a, p));
            var a1 = Vector256.Create(Unsafe.Add(ref a, lda + p));
            var a2 = Vector256.Create(Unsafe.Add(ref a, 2 * lda + p));
            var a3 = Vector256.Create(Unsafe.Add(ref a, 3 * lda + p));
            c00 = Vector256.FusedMultiplyAdd(a0, b0, c00); c01 = Vector256.FusedMultiplyAdd(a0, b1, c01);
            c10 = Vector256.FusedMultiplyAdd(a1, b0, c10); c11 = Vector256.FusedMultiplyAdd(a1, b1, c11);
            c20 = Vector256.FusedMultiplyAdd(a2, b0, c20); c21 = Vector256.FusedMultiplyAdd(a2, b1, c21);
            c30 = Vector256.FusedMultiplyAdd(a3, b0, c30); c31 = Vector256.FusedMultiplyAdd(a3, b1, c31);
        }
        Add(ref c, c00, c01);
        Add(ref Unsafe.Add(ref c, ldc), c10, c11);
        Add(ref Unsafe.Add(ref c, 2 * ldc), c20, c21);
        Add(ref Unsafe.Add(ref c, 3 * ldc), c30, c31);
    }

    private static void Add(ref float c, Vector256<float> x0, Vector256<float> x1)
    {
        (Vector256.LoadUnsafe(ref c) + x0).StoreUnsafe(ref c);
        (Vector256.LoadUnsafe(ref c, V) + x1).StoreUnsafe(ref c, V);
    }

    private static void Row1(int k, ref float a, ref float b, int ldb, ref float c)
    {
        Vector256<float> acc = default;
        for (int p = 0; p < k; p++) acc = Vector256.FusedMultiplyAdd(Vector256.Create(Unsafe.Add(ref a, p)), Vector256.LoadUnsafe(ref Unsafe.Add(ref b, p * ldb)), acc);
        (Vector256.LoadUnsafe(ref c) + acc).StoreUnsafe(ref c);
    }

    private static void Tail(int from, int n, int k, ReadOnlySpan<float> aRow, ReadOnlySpan<float> b, int ldb, Span<float> cRow)
    {
        for (int j = from; j < n; j++)
        {
            float sum = 0f;
            for (int p = 0; p < k; p++) sum = MathF.FusedMultiplyAdd(aRow[p], b[p * ldb + j], sum);
            cRow[j] += sum;
        }
    }

    /// <summary>C[m×n] += A[m×k] · B[n×k]ᵀ (rows of both run along k: dot products).</summary>
    public static void NT(int m, int n, int k, ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, Span<float> c, int ldc)
    {
        if (m == 0 || n == 0 || k == 0) return;
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
            for (; i + 4 <= m; i += 4)
            {
                int j = 0;
                for (; j + 2 <= n; j += 2) Dot4x2(k, a[(i * lda)..], lda, b[(j * ldb)..], ldb, c[(i * ldc + j)..], ldc);
                for (; j < n; j++)
                    for (int r = 0; r < 4; r++) c[(i + r) * ldc + j] += TensorPrimitives.Dot(a.Slice((i + r) * lda, k), b.Slice(j * ldb, k));
            }
        for (; i < m; i++)
            for (int j = 0; j < n; j++) c[i * ldc + j] += TensorPrimitives.Dot(a.Slice(i * lda, k), b.Slice(j * ldb, k));
    }

    private static void Dot4x2(int k, ReadOnlySpan<float> aSpan, int lda, ReadOnlySpan<float> bSpan, int ldb, Span<float> cSpan, int ldc)
    {
        ref float a = ref MemoryMarshal.GetReference(aSpan), b = ref MemoryMarshal.GetReference(bSpan);
        Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default, c30 = default, c31 = default;
        int p = 0;
        for (; p + V <= k; p += V)
        {
            var b0 = Vector256.LoadUnsafe(ref b, (nuint)p);
            var b1 = Vector256.LoadUnsafe(ref b, (nuint)(ldb + p));
            var a0 = Vector256.LoadUnsafe(ref a, (nuint)p);
            var a1 = Vector256.LoadUnsafe(ref a, (nuint)(lda + p));
            var a2 = Vector256.LoadUnsafe(ref a, (nuint)(2 * lda + p));
            var a3 = Vector256.LoadUnsafe(ref a, (nuint)(3 * lda + p));
            c00 = Vector256.FusedMultiplyAdd(a0, b0, c00); c01 = Vector256.FusedMultiplyAdd(a0, b1, c01);
            c10 = Vector256.FusedMultiplyAdd(a1, b0, c10); c11 = Vector256.FusedMultiplyAdd(a1, b1, c11);
            c20 = Vector256.FusedMultiplyAdd(a2, b0, c20); c21 = Vector256.FusedMultiplyAdd(a2, b1, c21);
            c30 = Vector256.FusedMultiplyAdd(a3, b0, c30); c31 = Vector256.FusedMultiplyAdd(a3, b1, c31);
        }
        Span<float> s = [Vector256.Sum(c00), Vector256.Sum(c01), Vector256.Sum(c10), Vector256.Sum(c11), Vector256.Sum(c20), Vector256.Sum(c21), Vector256.Sum(c30), Vector256.Sum(c31)];
        for (; p < k; p++)
            for (int r = 0; r < 4; r++)
            {
                s[2 * r] = MathF.FusedMultiplyAdd(aSpan[r * lda + p], bSpan[p], s[2 * r]);
                s[2 * r + 1] = MathF.FusedMultiplyAdd(aSpan[r * lda + p], bSpan[ldb + p], s[2 * r + 1]);
            }
        for (int r = 0; r < 4; r++)
        {
            cSpan[r * ldc] += s[2 * r];
            cSpan[r * ldc + 1] += s[2 * r + 1];
        }
    }

    /// <summary>T[cols×rows] = S[rows×cols]ᵀ.</summary>
    public static void Transpose(int rows, int cols, ReadOnlySpan<float> s, int lds, Span<float> t, int ldt)
    {
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++) t[j * ldt + i] = s[i * lds + j];
    }
}
