"""Hand-written MLX ports of the model fixtures (fixtures/models/), written the way an MLX user would
write them by hand: mlx.nn layers, channels-last feature maps, mx.fast.scaled_dot_product_attention,
nn.LSTM. Each class has the fixture's constructor arguments and a `torch_weights(state_dict)`
static method giving its own parameters from the torch fixture's state_dict, so that
bench/bench_handwritten.py can check it against the converted model before timing both.
"""
