"""The gateway's endpoints, each a declaration over the one request flow (tollway.gateway.flow).

OpenAI chat completions, legacy completions and embeddings, Anthropic Messages (and its count_tokens), OpenAI Responses,
Gemini generateContent (for Google's clients) and the model list. Adding an endpoint: declare it in a
module here and list it below.
"""

from __future__ import annotations

from tollway.gateway.endpoint import Endpoint
from tollway.gateway.endpoints.chat_completions import CHAT_COMPLETIONS
from tollway.gateway.endpoints.completions import COMPLETIONS
from tollway.gateway.endpoints.cost_estimate import COST_ESTIMATE
from tollway.gateway.endpoints.embeddings import EMBEDDINGS
from tollway.gateway.endpoints.gemini import GEMINI, GEMINI_V1
from tollway.gateway.endpoints.messages import COUNT_TOKENS, MESSAGES
from tollway.gateway.endpoints.models import MODEL, MODELS
from tollway.gateway.endpoints.responses import RESPONSES

ENDPOINTS: tuple[Endpoint, ...] = (
    CHAT_COMPLETIONS,
    COMPLETIONS,
    EMBEDDINGS,
    MESSAGES,
    COUNT_TOKENS,
    RESPONSES,
    MODELS,
    MODEL,
    GEMINI,
    GEMINI_V1,
    COST_ESTIMATE,
)
