"""Translation between wire formats (OpenAI chat, Anthropic Messages, Gemini, OpenAI Responses).

OpenAI chat is the pivot: every provider accepts a chat request (natively or translated), and each
endpoint translates its own format to chat when its target does not speak it natively.
"""
