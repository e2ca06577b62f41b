"""The machine learning, laid out as Microsoft Recommenders lays out its library.

- ``splitting``: the per-viewer stratified split a version is measured on;
- ``rating``: scikit-surprise rating models, a registry of them (name, builder, parameters);
- ``ranking``: the rankers trained on implicit feedback, a registry of them (name, fit, score,
  default parameters), and the top-N selection;
- ``evaluation``: rating errors, ranking metrics, and both per demographic group;
- ``pipeline``: ``train_and_evaluate``, which runs the four on one data set.

Two jobs, two models. The rating model predicts a viewer's score for a movie and is measured by
RMSE, as the seed system's gate was. The ranker orders the catalogue for the list a viewer sees
and is trained on ratings and watches together: a rating model ranks poorly (on MovieLens-100K,
Microsoft Recommenders measured NDCG@10 of 0.096 for surprise SVD, below plain popularity).

Nothing here touches the database: it works on plain Python rows and numpy arrays, so the
benchmark runs it on MovieLens files directly.
"""
