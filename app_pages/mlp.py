"""MLP page: compare one hyperparameter of the seed's multilayer perceptron."""
from app_pages.comparison import comparison_page

comparison_page("mlp")
