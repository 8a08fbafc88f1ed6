/* Data sets in host memory: Fashion-MNIST from IDX files (gzip or plain), the Hillenbrand vowel
 * set from CSV. Loaders validate everything they read. */
#ifndef PNN_DATA_H
#define PNN_DATA_H

#include <stdint.h>

#include "pnn/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pnn_dataset {
    char name[64];
    int64_t n;          /* samples */
    int64_t dim;        /* features per sample */
    int n_classes;
    int64_t image_h, image_w;  /* image sets: dim = h * w; 0 otherwise */
    float *x;           /* n x dim, row-major */
    float *y;           /* n labels, class index as float */
} pnn_dataset;

/* Fashion-MNIST split "train" or "test" from dir (train-images-idx3-ubyte.gz etc., .gz or not);
 * pixels scaled to [0, 1]. limit > 0 keeps the first `limit` samples. */
pnn_status pnn_fmnist_load(const char *dir, const char *split, int64_t limit, pnn_dataset *out);
/* The vowel CSV (speaker, vowel, 12 features); split stratified by vowel into train and test
 * with test_frac of each class in test, shuffled by seed; features z-scored with the training
 * split's mean and standard deviation (applied to both). */
pnn_status pnn_vowels_load(const char *csv_path, uint64_t seed, double test_frac, pnn_dataset *train,
                           pnn_dataset *test);
void pnn_dataset_free(pnn_dataset *d);

/* Mirror an h x w image left-right into out (out != img). */
void pnn_image_hflip(const float *img, int64_t h, int64_t w, float *out);

#ifdef __cplusplus
}
#endif
#endif
