// The Anthropic Node SDK streams a message through Tollway; prints the final message's usage as JSON.
import Anthropic from "@anthropic-ai/sdk";

const client = new Anthropic({ baseURL: process.env.TOLLWAY_URL, apiKey: process.env.TOLLWAY_KEY, maxRetries: 0 });
const stream = client.messages.stream({
  model: process.argv[2] ?? "demo",
  max_tokens: 256,
  messages: [{ role: "user", content: "Say hello in five words." }],
});
const message = await stream.finalMessage();
const u = message.usage;
console.log(JSON.stringify({
  input: u.input_tokens,
  cache_read: u.cache_read_input_tokens ?? 0,
  cache_write: u.cache_creation_input_tokens ?? 0,
  output: u.output_tokens,
}));
