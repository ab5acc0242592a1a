"""Model families. Importing this package registers every family listed here."""

from gancli.models import (biggan, dcgan, mlp, pix2pix, progan, resnet, stylegan2,  # noqa: F401
                           translation)  # registration happens on import
from gancli.models.base import DataSpec, Nets, build_nets

__all__ = ["DataSpec", "Nets", "build_nets"]
