"""``opus_dred.speech``: the real recorded speech that tests, vectors and experiments use.

One job: fetch the Debian packages that carry recorded speech (pocketsphinx-testdata, codec2-examples,
asterisk-core-sounds-en-g722), verify them, and hand out clips as PCM at the rate asked for. Nothing else is a
source of speech in this project.
"""

from opus_dred.speech._corpus import Clip, SpeechError, ensure_corpus, get_clip, list_clips, load_clip

__all__ = ["Clip", "SpeechError", "list_clips", "get_clip", "load_clip", "ensure_corpus"]
