"""Sampling settings as named values: one frozen config per decoding loop.

- `ARSamplingConfig`: autoregressive GIVT decoding (`GIVTCausal`, `GIVTUViM`;
  `samplers.autoregressive`).
- `MaskedSamplingConfig`: continuous MaskGIT decoding of GIVT latents
  (`GIVTMaskGIT`; `samplers.masked`), as big_vision's `MaskedGenerationConfig`.
- `DiscreteMaskedSamplingConfig`: discrete MaskGIT decoding of VQGAN codes
  (`MaskGITImageGenerator`; `samplers.discrete_masked`).

A field left to None is unset: a task's `generate`/`inpaint` then takes the
preset's value (the task's `sampling_defaults`), else the built-in default
listed in the class docstring (`resolved()` fills those in). Set fields are
checked when the config is built, with the messages `generate` gives for the
same keyword argument. A call combines them as: built-in defaults < preset
defaults < `sampling=` < keyword overrides.
"""

import dataclasses
import typing

from keras_givt.utils import validation

# Mask-schedule vocabularies of the two MaskGIT families.
MASKED_SCHEDULES = ("cosine", "linear", "arccos")  # Power schedules "pow:k".
DISCRETE_MASKED_SCHEDULES = ("uniform", "cosine", "log", "exp")  # Power schedules "powk".


def check_masked_schedule(schedule):
    """A GIVT-MaskGIT `schedule` name: "cosine", "linear", "arccos" or "pow:k" (k > 0)."""
    return validation.check_schedule_name(schedule, MASKED_SCHEDULES, "pow:", "pow:2")


def check_discrete_masked_schedule(schedule):
    """A discrete MaskGIT `schedule` name: "uniform", "cosine", "log", "exp" or "powk" (k > 0)."""
    return validation.check_schedule_name(schedule, DISCRETE_MASKED_SCHEDULES, "pow", "pow2")


def _check_temperature(value):
    return validation.check_float("temperature", value, 0.0)


def _check_temperature_probs(value):
    return validation.check_float("temperature_probs", value, 0.0, min_inclusive=False)


def _check_cfg_weight(value):
    return validation.check_float("cfg_weight", value, allow_none=True)


def _check_choice_temperature(value):
    return validation.check_float("choice_temperature", value, 0.0)


def _check_num_steps(value):
    return validation.check_int("num_steps", value, 1)


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
    """Base class of the sampling configs: checks, `replace`, (de)serialization.

    A subclass declares its fields (all defaulting to None = unset), the
    check of each field (`field_checks`) and the built-in defaults
    (`builtin_defaults`).
    """

    # Field name -> check(value) returning the normalised value.
    field_checks: typing.ClassVar[dict] = {}
    # Field name -> the value an unset field takes when nothing else sets it.
    builtin_defaults: typing.ClassVar[dict] = {}

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is not None:
                object.__setattr__(self, field.name, self.field_checks[field.name](value))
        self._check_combination()

    def _check_combination(self):
        """Checks between fields (when all those involved are set)."""

    @classmethod
    def field_names(cls):
        """The names of the config's fields, in declaration order."""
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def _check_names(cls, names, where):
        valid = cls.field_names()
        unknown = [n for n in names if n not in valid]
        if unknown:
            raise TypeError(
                f"{where} got unexpected field(s) {unknown}. Valid fields: {', '.join(valid)}"
            )

    def replace(self, **overrides):
        """A copy with `overrides` set (None unsets a field); unknown names raise a TypeError."""
        self._check_names(overrides, f"{type(self).__name__}.replace()")
        return dataclasses.replace(self, **overrides)

    def set_fields(self):
        """The fields that are set (not None), as a dict."""
        return {k: v for k, v in self.get_config().items() if v is not None}

    def resolved(self):
        """A copy with every unset field at its built-in default."""
        unset = {k: v for k, v in self.builtin_defaults.items() if getattr(self, k) is None}
        return dataclasses.replace(self, **unset) if unset else self

    @property
    def greedy(self):
        """Whether the temperature is 0: greedy decoding."""
        return getattr(self, "temperature", None) == 0.0

    def get_config(self):
        """The fields as a JSON-serializable dict (unset fields are None)."""
        return {name: getattr(self, name) for name in self.field_names()}

    @classmethod
    def from_config(cls, config):
        """The config of a `get_config()` dict; unknown keys raise a TypeError."""
        config = dict(config)
        cls._check_names(config, f"{cls.__name__}.from_config()")
        return cls(**config)

    @classmethod
    def from_defaults(cls, defaults):
        """The config of a preset's `sampling_defaults` dict (keys of other configs ignored)."""
        if isinstance(defaults, SamplingConfig):
            defaults = defaults.set_fields()
        names = cls.field_names()
        return cls(**{k: v for k, v in dict(defaults or {}).items() if k in names})


@dataclasses.dataclass(frozen=True)
class ARSamplingConfig(SamplingConfig):
    """Autoregressive sampling settings of `GIVTCausal` and `GIVTUViM`.

    Fields left to None take the task's preset default, else the built-in
    default given here.

    Args:
        temperature: finite float >= 0 multiplying the mixture scales
            (big_vision's `temperature_scales`; default 1). 0 is greedy
            decoding (the mean of the most probable component).
        temperature_probs: finite float > 0 multiplying the mixture logits
            (default 1).
        cfg_weight: finite float w of density-based classifier-free guidance
            (default None: no guidance; `GIVTCausal` only).
        beam_size: positive int K, the number of beams (default 1).
        fan_size: positive int F >= K, candidates sampled per beam (default 1).
        stochastic_beams: bool. Keep K candidates sampled without
            replacement by score instead of the top K (default False).

    Example:
    ```python
    sampling = keras_givt.samplers.config.ARSamplingConfig(temperature=0.95, cfg_weight=0.4)
    z = model.generate(labels=[3, 5], seed=0, sampling=sampling, return_latents=True)
    z = model.generate(labels=[3, 5], seed=0, sampling=sampling.replace(beam_size=2, fan_size=4))
    ```
    """

    temperature: typing.Optional[float] = None
    temperature_probs: typing.Optional[float] = None
    cfg_weight: typing.Optional[float] = None
    beam_size: typing.Optional[int] = None
    fan_size: typing.Optional[int] = None
    stochastic_beams: typing.Optional[bool] = None

    field_checks: typing.ClassVar[dict] = {
        "temperature": _check_temperature,
        "temperature_probs": _check_temperature_probs,
        "cfg_weight": _check_cfg_weight,
        "beam_size": lambda v: validation.check_int("beam_size", v, 1),
        "fan_size": lambda v: validation.check_int("fan_size", v, 1),
        "stochastic_beams": lambda v: validation.check_bool("stochastic_beams", v),
    }
    builtin_defaults: typing.ClassVar[dict] = {
        "temperature": 1.0,
        "temperature_probs": 1.0,
        "beam_size": 1,
        "fan_size": 1,
        "stochastic_beams": False,
    }

    def _check_combination(self):
        if self.beam_size is not None and self.fan_size is not None:
            if self.fan_size < self.beam_size:
                raise ValueError(
                    "`fan_size` must be >= `beam_size` (each beam proposes F candidates). "
                    f"Received: beam_size={self.beam_size}, fan_size={self.fan_size}"
                )


@dataclasses.dataclass(frozen=True)
class MaskedSamplingConfig(SamplingConfig):
    """GIVT-MaskGIT sampling settings (big_vision's `MaskedGenerationConfig`).

    Fields left to None take the task's preset default, else the built-in
    default given here.

    Args:
        num_steps: positive int S, the number of decoding steps (default 16).
        schedule: "cosine" (big_vision, default), "linear", "arccos" or
            "pow:k" (k > 0): the fraction of tokens still masked per step.
        choice_temperature: finite float >= 0, the Gumbel noise scale of the
            confidence, annealed by (1 − ratio) (big_vision's t_C; default 1;
            0 = reveal the most confident first).
        temperature: finite float >= 0 multiplying the mixture scales
            (default 1; 0: greedy).
        temperature_probs: finite float > 0 multiplying the mixture logits
            (default 1).
        cfg_weight: finite float w of density-based classifier-free guidance
            (default None: no guidance).

    Example:
    ```python
    sampling = keras_givt.samplers.config.MaskedSamplingConfig(num_steps=8, cfg_weight=0.1)
    images = model.generate(labels=[1, 2], seed=0, sampling=sampling)
    edited = model.inpaint(images, mask, labels=[3, 3], sampling=sampling, num_steps=4)
    ```
    """

    num_steps: typing.Optional[int] = None
    schedule: typing.Optional[str] = None
    choice_temperature: typing.Optional[float] = None
    temperature: typing.Optional[float] = None
    temperature_probs: typing.Optional[float] = None
    cfg_weight: typing.Optional[float] = None

    field_checks: typing.ClassVar[dict] = {
        "num_steps": _check_num_steps,
        "schedule": check_masked_schedule,
        "choice_temperature": _check_choice_temperature,
        "temperature": _check_temperature,
        "temperature_probs": _check_temperature_probs,
        "cfg_weight": _check_cfg_weight,
    }
    builtin_defaults: typing.ClassVar[dict] = {
        "num_steps": 16,
        "schedule": "cosine",
        "choice_temperature": 1.0,
        "temperature": 1.0,
        "temperature_probs": 1.0,
    }


@dataclasses.dataclass(frozen=True)
class DiscreteMaskedSamplingConfig(SamplingConfig):
    """Discrete MaskGIT sampling settings of `MaskGITImageGenerator`.

    Fields left to None take the task's preset default, else the built-in
    default given here.

    Args:
        num_steps: positive int S (default 12, MaskGIT's ImageNet 256 setting).
        schedule: "cosine" (default), "uniform", "log", "exp" or "powk" (k > 0).
        choice_temperature: finite float >= 0, the Gumbel scale of the
            confidence, annealed by (1 − ratio) (default 4.5, MaskGIT's).
        temperature: finite float >= 0, the sampling temperature of the
            logits (default 1); 0 is greedy decoding (the argmax code).
        cfg_weight: finite float w of `l_c + w (l_c − l_u)` (default 0: off).

    Example:
    ```python
    sampling = keras_givt.samplers.config.DiscreteMaskedSamplingConfig(num_steps=8)
    images = model.generate(labels=[1, 2], seed=0, sampling=sampling, cfg_weight=2.0)
    ```
    """

    num_steps: typing.Optional[int] = None
    schedule: typing.Optional[str] = None
    choice_temperature: typing.Optional[float] = None
    temperature: typing.Optional[float] = None
    cfg_weight: typing.Optional[float] = None

    field_checks: typing.ClassVar[dict] = {
        "num_steps": _check_num_steps,
        "schedule": check_discrete_masked_schedule,
        "choice_temperature": _check_choice_temperature,
        "temperature": _check_temperature,
        "cfg_weight": _check_cfg_weight,
    }
    builtin_defaults: typing.ClassVar[dict] = {
        "num_steps": 12,
        "schedule": "cosine",
        "choice_temperature": 4.5,
        "temperature": 1.0,
        "cfg_weight": 0.0,
    }
