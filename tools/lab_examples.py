"""The layer examples printed in the lab text, with the outputs it prints.

Shared by the tests and by the grader emulation (tools/submission.py), which
loads this file by path so that the graded modules' import path stays clean.
"""
import numpy as np

EXPECTED = {
    'linear forward': [[-2.5, -0.06], [-1.06, -1.5]],
    'linear backward': [[1.8, -0.06666667, -1.93333333], [2.86666667, -0.06666667, -3.0]],
    'linear dL_wrt_W': [[[-2.0, -2.66666667], [-1.2, -1.6], [-0.4, -0.53333333]],
                        [[0.66666667, 0.8], [2.0, 2.4], [3.33333333, 4.0]]],
    'linear dL_wrt_b': [[[1.0, 1.33333333]], [[1.66666667, 2.0]]],
    'relu backward': [0.0, 0.0, 0.0, 0.0, 0.0, 0.25, 0.5, 0.75, 1.0],
    'sigmoid backward': [-0.06648057, -0.35051858, 0.0, 0.35051858, 0.06648057],
    'se backward': [-5.0, -3.75, -2.5, -1.25, 0.0, 1.25, 2.5, 3.75, 5.0],
}
TOLERANCE = 1e-8    # the lab prints 8 decimals


def run_examples(linear_class, relu_class, sigmoid_class, se_class):
    """Run the lab's four examples with the given classes: {name: computed array}."""
    input_dim, output_dim, batch_size = 3, 2, 2
    linear = linear_class(input_dim, output_dim)
    linear.W = np.linspace(1, -1, input_dim * output_dim).reshape(input_dim, output_dim)
    linear.b = np.linspace(-0.5, 0.5, output_dim).reshape(1, output_dim)
    x = np.linspace(-2, 2, batch_size * input_dim).reshape(batch_size, input_dim)
    results = {'linear forward': linear.forward(x)}
    results['linear backward'] = linear.backward(np.linspace(1, 2, output_dim * batch_size).reshape(batch_size, output_dim))
    results['linear dL_wrt_W'] = linear.dL_wrt_W
    results['linear dL_wrt_b'] = linear.dL_wrt_b

    relu = relu_class()
    relu.forward(np.linspace(-1, 1, 9))
    results['relu backward'] = relu.backward(np.linspace(-1, 1, 9))

    sigmoid = sigmoid_class()
    sigmoid.forward(np.linspace(-5, 5, 5))
    results['sigmoid backward'] = sigmoid.backward(np.linspace(-10, 10, 5))

    se = se_class()
    x_se = np.linspace(-5, 5, 9)
    se.forward(x_se, 0.5 * x_se)
    results['se backward'] = se.backward()
    return results


def mismatches(results):
    """Names of the examples whose shape or values differ from EXPECTED, with a reason."""
    problems = []
    for name, expected in EXPECTED.items():
        expected = np.asarray(expected)
        got = np.asarray(results[name])
        if got.shape != expected.shape:
            problems.append(f'{name}: shape {got.shape}, the lab prints {expected.shape}')
        elif not np.allclose(got, expected, rtol=0, atol=TOLERANCE):
            problems.append(f'{name}: {got.tolist()} differs from the lab\'s {expected.tolist()}')
    return problems
