"""Model families. Importing this package registers every family listed here."""

from gancli.models import dcgan, mlp, progan, resnet, stylegan2, translation  # noqa: F401  (registration happens on import)
from gancli.models.base import DataSpec, Nets, build_nets

__all__ = ["DataSpec", "Nets", "build_nets"]
