r"""Models: the building blocks a learned score or energy is made of.

- :mod:`~refscore.models.nn`: an MLP and a noise-conditional score network
  :math:`s_\theta(x,\sigma)` (Song & Ermon 2019, 2020), parameters as pytrees, ``save``/``load``;
- :mod:`~refscore.models.activations`: softplus, tanh, SiLU, sigmoid as fused autograd primitives
  whose every derivative order is one elementwise pass (CUDA kernels on CuPy);
- :mod:`~refscore.models.unet`: a small convolutional U-Net score network for images (EDM
  preconditioning, Karras et al. 2022);
- :mod:`~refscore.models.conv`: its 3×3 convolution as nine shifted matrix products, an autograd
  primitive with its own VJP;
- :mod:`~refscore.models.schedules`: the NCSNv2 noise schedule and step size (Song & Ermon 2020).

The neural *energy* built on the MLP is :class:`refscore.energies.MLPEnergy`.
"""
from . import activations, conv, nn, schedules, unet
from .nn import MLP, NoiseConditionalScoreNet, mlp_apply, mlp_init
from .schedules import NCSNv2Schedule, lognormal_level_index, ncsnv2_schedule
from .unet import ConvScoreNet

__all__ = ["activations", "conv", "nn", "schedules", "unet", "ConvScoreNet", "MLP", "NoiseConditionalScoreNet", "mlp_init", "mlp_apply",
           "ncsnv2_schedule", "NCSNv2Schedule", "lognormal_level_index"]
