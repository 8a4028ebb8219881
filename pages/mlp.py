"""MLP page: compare one hyperparameter of the seed's multilayer perceptron."""
from pages.comparison import comparison_page

comparison_page("mlp")
