"""Movies, viewers, ratings and watches; training and serving recommendations."""
