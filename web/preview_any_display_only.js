// Preview as Text (ComfyUI's PreviewAny node) shows its text in a widget of its own. Frontends up to
// 1.32 send that widget's value back with every Queue, as an input the node does not declare; ComfyUI's
// cache counts every input, so the node runs again whenever what it showed has changed, and a Queue with
// nothing touched after such a run is never answered from the cache. Newer frontends leave the widget
// out of the prompt (options.serialize = false); this does the same on the older ones. The text is still
// shown, and nothing the node computes changes.
import { app } from "../../scripts/app.js";

app.registerExtension({
  name: "CIELR.PreviewAnyDisplayOnly",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData.name !== "PreviewAny") return;
    const created = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      const result = created?.apply(this, arguments);  // the core extension adds its widgets here
      for (const widget of this.widgets ?? []) {
        if (widget.name?.startsWith("preview")) (widget.options ??= {}).serialize = false;
      }
      return result;
    };
  },
});
