// A local equivalent of MTurk's https://s3.amazonaws.com/mturk-public/externalHIT_v1.js:
// the same functions, the same behaviour, submitting to wherever turkSubmitTo says.
function turkGetParam(name, defaultValue) {
  var match = new RegExp("[?&]" + name + "=([^&#]*)").exec(window.location.href);
  return match === null ? defaultValue : match[1];
}

function turkGetSubmitToHost() {
  return decodeURIComponent(turkGetParam("turkSubmitTo", "https://www.mturk.com"));
}

function turkSetAssignmentID(form_name, button_name) {
  if (form_name == null) { form_name = "mturk_form"; }
  if (button_name == null) { button_name = "submitButton"; }
  var assignmentID = turkGetParam("assignmentId", "");
  var field = document.getElementById("assignmentId");
  if (field) { field.value = assignmentID; }
  if (assignmentID == "ASSIGNMENT_ID_NOT_AVAILABLE") {
    var btn = document.getElementById(button_name);
    if (btn) {
      btn.disabled = true;
      btn.value = "You must ACCEPT the HIT before you can submit the results.";
    }
  }
  var form = document.getElementById(form_name);
  if (form) { form.action = turkGetSubmitToHost() + "/mturk/externalSubmit"; }
}
