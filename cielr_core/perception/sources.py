"""Official perception model files: names, sizes and where to download them (for error messages and docs)."""

GROUNDING_DINO_FILES = ("groundingdino_swint_ogc.pth", "groundingdino_swinb_cogcoor.pth")
GROUNDING_DINO_SOURCE = "https://huggingface.co/ShilongLiu/GroundingDINO (groundingdino_swint_ogc.pth, 694 MB)"

BERT_FOLDER = "bert-base-uncased"
BERT_SOURCE = ("https://huggingface.co/google-bert/bert-base-uncased (config.json, vocab.txt, "
               "tokenizer.json, tokenizer_config.json, model.safetensors: put them in models/bert-base-uncased)")

SAM_FILES = ("sam_vit_b_01ec64.pth", "sam_vit_l_0b3195.pth", "sam_vit_h_4b8939.pth")
SAM_SOURCE = ("https://github.com/facebookresearch/segment-anything#model-checkpoints "
              "(sam_vit_b_01ec64.pth 375 MB, sam_vit_l_0b3195.pth 1.2 GB, sam_vit_h_4b8939.pth 2.6 GB)")
