// The hello Worker workerd serves in the bench: the same answer as the others.
export default {
  async fetch(request) {
    return new Response("hello world", { headers: { "content-type": "text/plain" } });
  },
};
