from django.apps import AppConfig
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class RecommenderConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "recommender"

    def ready(self) -> None:
        # The names live in the learning registries, not in settings: checked here, at start,
        # so a typo stops the process with a message naming the variable, as every setting does.
        from importlib.util import find_spec

        from recommender.learning.ranking import NAMED_RANKERS, SELECT
        from recommender.learning.rating import RATING_ALGORITHMS
        from recommender.learning.spark import PYSPARK_MISSING

        rankers = {SELECT: None, **NAMED_RANKERS}
        for variable, registry in (("TRAIN_RATING_ALGORITHM", RATING_ALGORITHMS), ("TRAIN_RANKER", rankers)):
            value = getattr(settings, variable)
            if value not in registry:
                raise ImproperlyConfigured(f"{variable}={value!r} must be one of: {', '.join(registry)}")
        if settings.TRAINING_ENGINE == "spark" and find_spec("pyspark") is None:
            raise ImproperlyConfigured(PYSPARK_MISSING)
