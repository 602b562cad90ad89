"""Qwen3-Omni's thinker through transformers' own classes
(`Qwen3OmniMoeThinkerForConditionalGeneration`, text out only).

Jia et al. (2026) compare open ALMs of different capacity; Qwen3-Omni-30B-A3B (Qwen team,
2025) succeeds Qwen2.5-Omni with an AuT audio encoder, a vision encoder and a Qwen3
mixture-of-experts decoder (48 layers, 128 experts, 8 routed per token). The study needs text
answers only, so only the thinker is loaded: transformers' weight conversion strips the
`thinker.` prefix from the full Omni checkpoint and leaves the talker and code2wav unloaded.

Audio: 16 kHz mono float arrays through `Qwen3OmniMoeProcessor` (Whisper features). Its audio
defaults are `padding=True, truncation=False`: features are padded to the batch's longest
clip and never cut, so the feature extractor's `chunk_length` is no window and
`audio_window_s` is None. The encoder convolves the features in 1 s chunks (`n_window` = 50,
i.e. 100 frames -> 13 tokens) and attends within 8 s windows (`n_window_infer` = 800
frames), so a clip of any length is encoded whole, at about 13 audio tokens per second.

Positions: the decoder uses interleaved 3-D rotary positions (M-RoPE). For prompts without
images or videos `get_rope_index` takes its text branch: all three components are the
running index over the attention mask and the rope delta is 0, audio tokens included. The
shared-prefix engine's 1-D positions are therefore the model's own, and
`default_engine = "prefix"` holds (tests/test_adapters.py checks it token for token against
generate(); tests/test_arch_qwen3_omni.py checks the positions themselves).

Prompt: the checkpoint's Qwen3 chat template adds no default system turn, so a prompt is
`<|im_start|>user\n<|audio_start|><|audio_pad|><|audio_end|>{text}<|im_end|>\n
<|im_start|>assistant\n`; the answer ends with `<|im_end|>`.

Variants not registered: -Thinking writes free-form `<think>...</think>` reasoning before
its answer, which the class-name constraint and label scores cannot accommodate; -Captioner
only describes audio and, per its model card (from memory), takes no instruction.

Tested offline: `tiny-qwen3-omni`, the real architecture at toy size (a 4-expert MoE, top-2)
with the real processor class and chat template, through every conformance test. Not
tested: the hub checkpoint itself (nothing can be downloaded) and image or video input.
"""
from __future__ import annotations

from pathlib import Path

from ambiemo.alm.hf.adapter import TransformersAdapter
from ambiemo.alm.registry import ModelSpec, register_adapter, register_model
from ambiemo.alm.tiny import chatml_tokenizer, register_tiny, save_seeded, whisper_features

HF_CLASS = "Qwen3OmniMoeThinkerForConditionalGeneration"

# The chat_template.json of the Qwen3-Omni-30B-A3B checkpoints, verbatim. The text here is the
# -Thinking checkpoint's (the copy we could read offline); the -Instruct one is the same
# Qwen3 template as far as we could verify it (same audio detection, tools preamble and
# `enable_thinking` switch, which is left undefined here, so no `<think>` block is added).
QWEN3_OMNI_CHAT_TEMPLATE = r'''{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0].role == 'system' %}{{- messages[0].content + '\n\n' }}{%- endif %}
    {{- "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0].role == 'system' %}
        {%- if messages[0].content is string %}
            {{- '<|im_start|>system\n' + messages[0].content + '<|im_end|>\n' }}
        {%- else %}
            {%- for content in messages[0].content %}
                {%- if content.type == 'image' or 'image' in content or 'image_url' in content %}
                    {{- '<|im_start|>system\n' +"<|vision_start|><|image_pad|><|vision_end|>"+ '<|im_end|>\n' }}
                {%- elif content.type == 'audio' or 'audio' in content or 'audio_url' in content %}
                    {{- '<|im_start|>system\n' +"<|audio_start|><|audio_pad|><|audio_end|>"+ '<|im_end|>\n' }}
                {%- elif content.type == 'video' or 'video' in content %}
                    {{- '<|im_start|>system\n' +"<|vision_start|><|video_pad|><|vision_end|>"+ '<|im_end|>\n' }}
                {%- elif content.type == 'text' %}
                    {{- '<|im_start|>system\n' +content.text+ '<|im_end|>\n' }}
                {%- endif %}
            {%- endfor %}
        {%- endif %}
    {%- endif %}
{%- endif %}
{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}
{%- for message in messages[::-1] %}
    {%- set index = (messages|length - 1) - loop.index0 %}
    {%- if ns.multi_step_tool and message.role == "user" and message.content is string and not(message.content.startswith('<tool_response>') and message.content.endswith('</tool_response>')) %}
        {%- set ns.multi_step_tool = false %}
        {%- set ns.last_query_index = index %}
    {%- endif %}
{%- endfor %}
{%- for message in messages %}
    {%- if message.content is string %}
        {%- set content = message.content %}
    {%- else %}
        {%- set content = namespace(text="") %}
        {%- for mcontent in message.content %}
            {%- if mcontent.type == 'image' or 'image' in mcontent or 'image_url' in mcontent %}
                {%- set content.text = content.text~"<|vision_start|><|image_pad|><|vision_end|>" %}
            {%- elif mcontent.type == 'audio' or 'audio' in mcontent or 'audio_url' in mcontent %}
                {%- set content.text = content.text~"<|audio_start|><|audio_pad|><|audio_end|>" %}
            {%- elif mcontent.type == 'video' or 'video' in mcontent %}
                {%- set content.text = content.text~"<|vision_start|><|video_pad|><|vision_end|>" %}
            {%- elif mcontent.type == 'text' %}
                {%- set content.text = content.text~mcontent.text %}
            {%- endif %}
        {%- endfor %}
        {%- set content = content.text %}
    {%- endif %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) %}
        {{- '<|im_start|>' + message.role + '\n' + content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {%- set reasoning_content = "" %}
        {%- if message.reasoning_content is string %}
            {%- set reasoning_content = message.reasoning_content %}
        {%- else %}
            {%- if '</think>' in content %}
            {%- set reasoning_content = content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') %}
            {%- set content = content.split('</think>')[-1].lstrip('\n') %}
        {%- endif %}
    {%- endif %}
    {%- if loop.index0 > ns.last_query_index %}
        {%- if loop.last or (not loop.last and reasoning_content) %}
            {{- '<|im_start|>' + message.role + '\n<think>\n' + reasoning_content.strip("\n") + '\n</think>\n\n' + content.lstrip('\n') }}
        {%- else %}
            {{- '<|im_start|>' + message.role + '\n' + content }}
        {%- endif %}
    {%- else %}
        {{- '<|im_start|>' + message.role + '\n' + content }}
    {%- endif %}
    {%- if message.tool_calls %}
        {%- for tool_call in message.tool_calls %}
            {%- if (loop.first and content) or (not loop.first) %}{{- '\n' }}{%- endif %}
            {%- if tool_call.function %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {%- if tool_call.arguments is string %}
                {{- tool_call.arguments }}
            {%- else %}
                {{- tool_call.arguments | tojson }}
            {%- endif %}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
    {%- endif %}
    {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if loop.first or (messages[loop.index0 - 1].role != "tool") %}{{- '<|im_start|>user' }}{%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}{{- '<|im_end|>\n' }}{%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
    {%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\n\n</think>\n\n' }}{%- endif %}
{%- endif %}
'''
# Named tokens the processor reads off the tokenizer (tokenizer.audio_token, ...), as the hub
# tokenizer_config declares them.
QWEN3_OMNI_NAMED_TOKENS = {
    "audio_token": "<|audio_pad|>", "audio_bos_token": "<|audio_start|>",
    "audio_eos_token": "<|audio_end|>", "image_token": "<|image_pad|>",
    "video_token": "<|video_pad|>", "vision_bos_token": "<|vision_start|>",
    "vision_eos_token": "<|vision_end|>",
}
QWEN3_OMNI_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>",
                      *QWEN3_OMNI_NAMED_TOKENS.values(), "<|vision_pad|>"]
# Added but not special in the Qwen3 vocabulary (they survive skip_special_tokens).
QWEN3_THINK_TOKENS = ["<think>", "</think>"]


# Both the thinker-only config and the full Omni one (the hub checkpoint) load as the thinker.
@register_adapter("qwen3_omni_moe_thinker", "qwen3_omni_moe")
class Qwen3OmniAdapter(TransformersAdapter):
    """Qwen3-Omni's thinker (see the module docstring for audio length and positions)."""

    hf_class = HF_CLASS
    end_of_turn = "<|im_end|>"

    def audio_window_s(self) -> float | None:
        # The processor switches the feature extractor's truncation off, so its
        # chunk_length (which the base reads as the window) never cuts a clip.
        if getattr(self.processor, "audio_kwargs", {}).get("truncation") is False:
            return None
        return super().audio_window_s()


# The thinker of Qwen/Qwen3-Omni-30B-A3B-Instruct's config.json (thinker_config, as
# transformers 5.7 loads it): what the adapter loads. tests/test_arch_qwen3_omni.py counts it
# on the meta device from these values: 31,719,205,488 parameters = AuT audio encoder 0.65e9
# + vision encoder 0.54e9 + MoE decoder and LM head 30.53e9. Active per token ("A3B"): the
# decoder with 8 of its 128 experts is 3.35e9 (4.0e9 with the audio encoder); the capacity
# axis uses the total, as for every other model.
QWEN3_OMNI_THINKER = dict(
    text=dict(vocab_size=152064, hidden_size=2048, intermediate_size=768,
              moe_intermediate_size=768, num_hidden_layers=48, num_attention_heads=32,
              num_key_value_heads=4, head_dim=128, num_experts=128, num_experts_per_tok=8,
              decoder_sparse_step=1, mlp_only_layers=[], tie_word_embeddings=False),
    audio=dict(d_model=1280, encoder_layers=32, encoder_attention_heads=20,
               encoder_ffn_dim=5120, num_mel_bins=128, downsample_hidden_size=480,
               output_dim=2048, n_window=50, n_window_infer=800),
    vision=dict(depth=27, hidden_size=1152, intermediate_size=4304, num_heads=16,
                patch_size=16, spatial_merge_size=2, temporal_patch_size=2,
                out_hidden_size=2048, num_position_embeddings=2304,
                deepstack_visual_indexes=[8, 16, 24]),
)
register_model(ModelSpec(
    name="qwen3-omni-30b-a3b", checkpoint="Qwen/Qwen3-Omni-30B-A3B-Instruct", hf_class=HF_CLASS,
    n_params=31.72e9, adapter="Qwen3OmniAdapter"))
register_model(ModelSpec(
    name="tiny-qwen3-omni", checkpoint="tiny:qwen3_omni_moe", hf_class=HF_CLASS,
    n_params=259_840, adapter="Qwen3OmniAdapter"))


@register_tiny("qwen3_omni_moe", version=1)
def build_tiny_qwen3_omni(path: str | Path, *, seed: int = 0) -> Path:
    """Write a tiny random-weight Qwen3-Omni thinker (model, tokenizer, processor) to `path`:
    a 2-layer MoE decoder with 4 experts (top-2), a 2-layer audio encoder with the real
    chunking (`n_window`, `n_window_infer`) and a 1-block vision encoder."""
    from transformers import (Qwen2VLImageProcessor, Qwen2VLVideoProcessor,
                              Qwen3OmniMoeProcessor, Qwen3OmniMoeThinkerConfig,
                              Qwen3OmniMoeThinkerForConditionalGeneration)

    tok = chatml_tokenizer(QWEN3_OMNI_SPECIAL, named=QWEN3_OMNI_NAMED_TOKENS)
    tok.add_tokens(QWEN3_THINK_TOKENS)
    ids = {name: tok.convert_tokens_to_ids(t) for name, t in QWEN3_OMNI_NAMED_TOKENS.items()}
    # Inert here (the processor never truncates); 300 s as the Omni checkpoints'
    # preprocessor config has it (Qwen2.5-Omni's; Qwen3-Omni's from memory).
    fe = whisper_features(300)
    # Patch and merge sizes must match the vision config, as on the hub.
    vision = dict(patch_size=16, merge_size=2, temporal_patch_size=2)
    processor = Qwen3OmniMoeProcessor(
        image_processor=Qwen2VLImageProcessor(**vision),
        video_processor=Qwen2VLVideoProcessor(**vision), feature_extractor=fe,
        tokenizer=tok, chat_template=QWEN3_OMNI_CHAT_TEMPLATE)
    text = 64
    config = Qwen3OmniMoeThinkerConfig(
        audio_config={"d_model": 32, "encoder_layers": 2, "encoder_attention_heads": 2,
                      "encoder_ffn_dim": 64, "num_mel_bins": 128, "downsample_hidden_size": 8,
                      "max_source_positions": 100, "n_window": 50, "n_window_infer": 800,
                      "output_dim": text},
        vision_config={"depth": 1, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2,
                       "patch_size": 16, "spatial_merge_size": 2, "temporal_patch_size": 2,
                       "num_position_embeddings": 16, "deepstack_visual_indexes": [0],
                       "out_hidden_size": text},
        text_config={"vocab_size": len(tok), "hidden_size": text, "intermediate_size": 128,
                     "moe_intermediate_size": 32, "num_experts": 4, "num_experts_per_tok": 2,
                     "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                     "head_dim": 16, "max_position_embeddings": 2048,
                     # head_dim 16: the three interleaved M-RoPE sections cover its 8 frequencies
                     "rope_parameters": {"rope_type": "default", "rope_theta": 1e6,
                                         "mrope_section": [2, 3, 3], "interleaved": True},
                     "tie_word_embeddings": False},
        audio_token_id=ids["audio_token"], image_token_id=ids["image_token"],
        video_token_id=ids["video_token"], audio_start_token_id=ids["audio_bos_token"],
        user_token_id=tok.encode("user", add_special_tokens=False)[0],
        position_id_per_seconds=13,
        # Not declared by the config class but read by get_rope_index; the hub config has them.
        vision_start_token_id=ids["vision_bos_token"], vision_end_token_id=ids["vision_eos_token"],
        audio_end_token_id=ids["audio_eos_token"],
    )
    return save_seeded(Qwen3OmniMoeThinkerForConditionalGeneration, config, processor, tok,
                       Path(path), seed)
