"""The AI gateway: OpenAI's Responses and Conversations APIs, and the offline stand-in for dev mode."""
