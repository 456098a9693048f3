// aesthetic-qr: show each AQR_ node's report (its "text" UI output) on the node after it runs, in a read-only
// text box under the node's preview image (AQR_Verify: the report and its heatmap; AQR_Encode: the code's info
// and its blueprint). The box is not a setting: it is never saved into the workflow or sent with the prompt.
import { app } from "../../scripts/app.js";

const WIDGET = "aqr_report";

app.registerExtension({
    name: "aesthetic-qr.reports",
    async beforeRegisterNodeDef(nodeType, nodeData) {
        if (!nodeData?.name?.startsWith("AQR_")) return;
        const onExecuted = nodeType.prototype.onExecuted;
        nodeType.prototype.onExecuted = function (message) {
            const result = onExecuted?.apply(this, arguments);
            const text = message?.text;
            if (text === undefined || text === null) return result;
            const value = Array.isArray(text) ? text.join("\n\n") : String(text);
            let widget = this.widgets?.find((w) => w.name === WIDGET);
            if (!widget) {
                const box = document.createElement("textarea");
                box.readOnly = true;
                box.className = "comfy-multiline-input";
                box.style.fontFamily = "monospace";
                box.style.fontSize = "11px";
                widget = this.addDOMWidget(WIDGET, "customtext", box, {
                    serialize: false,
                    getValue: () => box.value,
                    setValue: (v) => { box.value = v; },
                    getMinHeight: () => 110,
                });
                widget.serialize = false;
            }
            widget.value = value;
            const want = this.computeSize?.();  // room for the box under the preview image
            if (want) this.setSize([Math.max(this.size[0], want[0]), Math.max(this.size[1], want[1])]);
            this.setDirtyCanvas?.(true, true);
            return result;
        };
    },
});
