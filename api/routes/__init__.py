"""One thin router per resource over the shared `api.state.AppState`: questions, documents, the OpenAI-compatible
API, the service (health, metrics, the chat page), feedback and the offline API docs."""
