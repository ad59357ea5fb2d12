"""The real-model corpus of bench/realworld.py: which models, built how, fed what.

Every entry builds the model the way its package's users do (a torchvision builder or class, `timm.create_model`,
a transformers model class from its config), with small sizes so the whole corpus runs in minutes on 2 CPU cores.
`args` / `kwargs` are Python literals passed to `module.ctor` on both sides (torch, and the converted MLX
tree); `config` is a transformers config `(module, class, kwargs)` built from the installed (unconverted,
torch-free) configuration module and passed as the first argument. `inputs` are `(keyword or None, spec)`
with torch2mlx.verify_model's input specs: `1,3,64,64` (float32 normal, NCHW as torch takes it) or
`int:0:100:1,8` (int64 in [0, 100)).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


@dataclass(frozen=True)
class Entry:
    package: str          # torchvision | timm | transformers
    family: str
    name: str             # unique within its package (timm and torchvision share resnet18, vgg11, ...)
    module: str           # where the constructor lives (imported from the converted tree on the MLX side)
    ctor: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    inputs: tuple = ((None, "1,3,64,64"),)
    config: Optional[tuple] = None  # transformers: (config module, config class, kwargs)
    first_output: bool = False      # compare only output[0] (transformers' ModelOutput: logits / last_hidden_state)

    @property
    def key(self) -> str:
        """The entry's name over the whole corpus (its saved data's file name): `timm.resnet18`."""
        return f"{self.package}.{self.name}"


def _tv(family: str, name: str, module: str, ctor: str = "", size: int = 64, **kwargs) -> Entry:
    kwargs.setdefault("num_classes", 10)
    return Entry("torchvision", family, name, f"torchvision.models.{module}", ctor or name, (), kwargs,
                 ((None, f"1,3,{size},{size}"),))


TORCHVISION = [
    _tv("alexnet", "alexnet", "alexnet", size=224),
    _tv("vgg", "vgg11", "vgg", size=224),
    _tv("vgg", "vgg11_bn", "vgg", size=224),
    _tv("resnet", "resnet18", "resnet"),
    _tv("resnet", "resnet50", "resnet"),
    _tv("resnext", "resnext50_32x4d", "resnet"),
    _tv("wide_resnet", "wide_resnet50_2", "resnet"),
    _tv("squeezenet", "squeezenet1_1", "squeezenet"),
    _tv("densenet", "densenet121", "densenet"),
    _tv("inception", "inception_v3", "inception", size=96, aux_logits=False, init_weights=False),
    _tv("googlenet", "googlenet", "googlenet", aux_logits=False, init_weights=False),
    _tv("shufflenet_v2", "shufflenet_v2_x0_5", "shufflenetv2"),
    _tv("mobilenet_v2", "mobilenet_v2", "mobilenetv2"),
    _tv("mobilenet_v3", "mobilenet_v3_small", "mobilenetv3"),
    _tv("mnasnet", "mnasnet0_5", "mnasnet"),
    _tv("efficientnet", "efficientnet_b0", "efficientnet"),
    _tv("efficientnet_v2", "efficientnet_v2_s", "efficientnet"),
    _tv("regnet", "regnet_x_400mf", "regnet"),
    _tv("regnet", "regnet_y_400mf", "regnet"),
    _tv("convnext", "convnext_tiny", "convnext"),
    _tv("swin", "swin_t", "swin_transformer"),
    _tv("swin_v2", "swin_v2_t", "swin_transformer"),
    _tv("vit", "vit_tiny", "vision_transformer", "VisionTransformer", size=32, image_size=32, patch_size=8,
        num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64),
    _tv("maxvit", "maxvit_small", "maxvit", "MaxVit", size=56, input_size=(56, 56), stem_channels=16, partition_size=7,
        block_channels=[32, 64], block_layers=[1, 1], head_dim=16, stochastic_depth_prob=0.0),
]


def _timm(family: str, name: str, size: int = 64, **kwargs) -> Entry:
    kwargs = {"pretrained": False, "num_classes": 10, **kwargs}
    return Entry("timm", family, name, "timm", "create_model", (name,), kwargs, ((None, f"1,3,{size},{size}"),))


TIMM = [
    _timm("resnet", "resnet18"),
    _timm("resnet", "resnet50d"),
    _timm("resnext", "resnext26ts"),
    _timm("senet", "seresnext26d_32x4d"),
    _timm("resnest", "resnest14d"),
    _timm("res2net", "res2net50_14w_8s"),
    _timm("efficientnet", "efficientnet_b0"),
    _timm("efficientnet", "tf_efficientnet_b0"),
    _timm("mobilenetv3", "mobilenetv3_small_100"),
    _timm("mobilenetv3", "mobilenetv3_large_100"),
    _timm("mixnet", "mixnet_s"),
    _timm("ghostnet", "ghostnet_100"),
    _timm("convnext", "convnext_atto"),
    _timm("convnext", "convnextv2_atto"),
    _timm("vit", "vit_tiny_patch16_224", img_size=64),
    _timm("deit", "deit_tiny_patch16_224", img_size=64),
    _timm("deit", "deit_tiny_distilled_patch16_224", img_size=64),
    _timm("swin", "swin_tiny_patch4_window7_224", size=128, img_size=128, window_size=4),
    _timm("regnet", "regnetx_002"),
    _timm("regnet", "regnety_002"),
    _timm("densenet", "densenet121"),
    _timm("inception", "inception_v3", size=96),
    _timm("dla", "dla34"),
    _timm("rexnet", "rexnet_100"),
    _timm("cspnet", "cspresnet50"),
    _timm("mobilevit", "mobilevit_xxs"),
    _timm("poolformer", "poolformer_s12"),
    _timm("edgenext", "edgenext_xx_small"),
    _timm("pvt_v2", "pvt_v2_b0"),
    _timm("mlp_mixer", "mixer_s16_224", img_size=64),
    _timm("vgg", "vgg11", size=224),
    _timm("fastvit", "fastvit_t8"),
]


def _hf(family: str, name: str, arch: str, cls: str, config_cls: str, config: dict, inputs: tuple) -> Entry:
    # eager attention on both sides: the MLX stand-ins (--hub transformers) run the modeling file's eager function,
    # so torch runs it too, and the line tracing sees (and counts the flags of) the code the MLX model runs
    config = {**config, "attn_implementation": "eager"}
    return Entry("transformers", family, name, f"transformers.models.{arch}.modeling_{arch}", cls, (), {},
                 inputs, (f"transformers.models.{arch}.configuration_{arch}", config_cls, config), True)


_TOKENS = (("input_ids", "int:0:100:1,8"),)
_TEXT = {"vocab_size": 100, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64}
_IMAGE = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64,
          "image_size": 32, "patch_size": 8}

TRANSFORMERS = [
    _hf("bert", "BertModel", "bert", "BertModel", "BertConfig", {**_TEXT, "max_position_embeddings": 64}, _TOKENS),
    _hf("roberta", "RobertaModel", "roberta", "RobertaModel", "RobertaConfig", {**_TEXT, "max_position_embeddings": 64},
        _TOKENS),
    _hf("distilbert", "DistilBertModel", "distilbert", "DistilBertModel", "DistilBertConfig",
        {"vocab_size": 100, "dim": 32, "n_layers": 2, "n_heads": 4, "hidden_dim": 64, "max_position_embeddings": 64},
        _TOKENS),
    _hf("gpt2", "GPT2LMHeadModel", "gpt2", "GPT2LMHeadModel", "GPT2Config",
        {"vocab_size": 100, "n_embd": 32, "n_layer": 2, "n_head": 4, "n_positions": 64}, _TOKENS),
    _hf("llama", "LlamaForCausalLM", "llama", "LlamaForCausalLM", "LlamaConfig",
        {**_TEXT, "num_key_value_heads": 2}, _TOKENS),
    _hf("mistral", "MistralForCausalLM", "mistral", "MistralForCausalLM", "MistralConfig",
        {**_TEXT, "num_key_value_heads": 2}, _TOKENS),
    _hf("qwen2", "Qwen2ForCausalLM", "qwen2", "Qwen2ForCausalLM", "Qwen2Config", {**_TEXT, "num_key_value_heads": 2},
        _TOKENS),
    _hf("t5", "T5EncoderModel", "t5", "T5EncoderModel", "T5Config",
        {"vocab_size": 100, "d_model": 32, "d_kv": 8, "d_ff": 64, "num_layers": 2, "num_heads": 4}, _TOKENS),
    _hf("vit", "ViTForImageClassification", "vit", "ViTForImageClassification", "ViTConfig", {**_IMAGE, "num_labels": 10},
        (("pixel_values", "1,3,32,32"),)),
    _hf("clip", "CLIPVisionModel", "clip", "CLIPVisionModel", "CLIPVisionConfig", _IMAGE,
        (("pixel_values", "1,3,32,32"),)),
    _hf("clip", "CLIPTextModel", "clip", "CLIPTextModel", "CLIPTextConfig",
        {**_TEXT, "max_position_embeddings": 64}, _TOKENS),
    _hf("whisper", "WhisperEncoder", "whisper", "WhisperEncoder", "WhisperConfig",
        {"vocab_size": 100, "d_model": 32, "encoder_layers": 2, "encoder_attention_heads": 4, "decoder_layers": 2,
         "decoder_attention_heads": 4, "encoder_ffn_dim": 64, "decoder_ffn_dim": 64, "num_mel_bins": 16,
         "max_source_positions": 16}, (("input_features", "1,16,32"),)),
]

CORPUS = [*TORCHVISION, *TIMM, *TRANSFORMERS]
PACKAGES = ("torchvision", "timm", "transformers")
