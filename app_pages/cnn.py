"""CNN page: compare stride, filter size or a training option of the seed's CNN."""
from app_pages.comparison import comparison_page

comparison_page("cnn")
