// KerfTrain: training on the ONNX graph.
//
// - Autodiff/: reverse-mode differentiation as a graph transform. A loss built from graph
//   nodes on the model's outputs is differentiated with respect to chosen float initializers;
//   each op family has one gradient rule that emits ONNX nodes (default domain where a standard
//   op exists, `kerf.training` for the rest), run by KerfRuntime.
// - TrainingRewrites: the forward in training mode (BatchNormalization on batch statistics
//   with running-stat updates, Dropout masks), as PyTorch's model.train().
// - Loss/: losses as graph nodes appended to the model.
// - Optim/: torch.optim's update rules and learning-rate schedules, as kernels over buffers.
// - Trainer: one session runs forward, loss and backward; the optimizer updates the
//   parameters it feeds.
