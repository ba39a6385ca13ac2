// The list, detail and review views (registered on window.llmloopConsole.views).
"use strict";
